// The "Ozon inventory" page, the ozon_inventory_sync DAG tab and the dashboard widget of Airflow's UI.
//
// Plain JavaScript, no build step: Airflow's UI imports this module (plugin react_apps, bundle_url)
// and renders globalThis["Ozon inventory"] (page and DAG tab) and globalThis["Ozon inventory summary"]
// (home dashboard) with the React it exposes as globalThis.React. Data comes from the plugin's
// FastAPI app next to this file (../api/…), with the user's Airflow session cookie.

const React = globalThis.React;
const { useCallback, useEffect, useMemo, useRef, useState } = React;
const h = React.createElement;
const Router = globalThis.ReactRouterDOM;

const DAG_ID = "ozon_inventory_sync";
const API = new URL("../api/", import.meta.url);
const STATUSES = ["failed", "degraded", "stale", "pending", "complete", "removed"];
const NOTHING_TO_DO = "nothing to do";
const COLORS = {
  failed: "#d93025",
  degraded: "#e8710a",
  stale: "#b58900",
  pending: "#80868b",
  complete: "#188038",
  removed: "#9aa0a6",
  running: "#1a73e8",
  warning: "#b06000",
};
const BAR = { free_to_sell: "#188038", promised: "#1a73e8", reserved: "#e8710a" };
const FG = "var(--chakra-colors-fg, #1a202c)";
const MUTED = "var(--chakra-colors-fg-muted, #5f6368)";
const BORDER = "var(--chakra-colors-border, #dadce0)";
const SUBTLE = "var(--chakra-colors-bg-subtle, #f8f9fa)";

async function getJSON(path, params) {
  const url = new URL(path, API);
  for (const [k, v] of Object.entries(params || {})) {
    if (v !== undefined && v !== null && v !== "") url.searchParams.set(k, String(v));
  }
  const answer = await fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } });
  if (!answer.ok) {
    let detail = answer.statusText;
    try {
      detail = (await answer.json()).detail || detail;
    } catch (e) {
      /* not JSON */
    }
    throw new Error(`${answer.status} ${detail}`);
  }
  return answer.json();
}

function useData(path, params, refreshMs) {
  const key = path + JSON.stringify(params || {});
  const [state, setState] = useState({ data: null, error: null, loading: true, ms: null });
  const [tick, setTick] = useState(0);
  useEffect(() => {
    let live = true;
    const started = performance.now();
    setState((s) => ({ ...s, loading: true }));
    getJSON(path, params).then(
      (data) => live && setState({ data, error: null, loading: false, ms: performance.now() - started }),
      (error) => live && setState({ data: null, error: String(error.message || error), loading: false, ms: null }),
    );
    return () => {
      live = false;
    };
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [key, tick]);
  useEffect(() => {
    if (!refreshMs) return undefined;
    const timer = setInterval(() => setTick((t) => t + 1), refreshMs);
    return () => clearInterval(timer);
  }, [refreshMs]);
  return state;
}

// Links into Airflow's UI: paths relative to its base URL, followed inside the single-page app.
function useGo() {
  let navigate = null;
  try {
    navigate = Router && Router.useNavigate ? Router.useNavigate() : null;
  } catch (e) {
    navigate = null;
  }
  return useCallback(
    (event, path) => {
      if (!navigate || event.button !== 0 || event.metaKey || event.ctrlKey || event.shiftKey) return;
      event.preventDefault();
      navigate("/" + path);
    },
    [navigate],
  );
}

function UiLink({ path, children, testId, title }) {
  const go = useGo();
  if (!path) return h("span", null, children);
  return h(
    "a",
    {
      href: new URL(path, document.baseURI).href,
      onClick: (e) => go(e, path),
      "data-testid": testId,
      title,
      style: { color: "var(--chakra-colors-fg-info, #1a73e8)", textDecoration: "underline" },
    },
    children,
  );
}

function ago(seconds) {
  if (seconds === null || seconds === undefined) return "—";
  const s = Math.max(0, Math.round(seconds));
  if (s < 90) return `${s} s`;
  if (s < 90 * 60) return `${Math.round(s / 60)} min`;
  if (s < 48 * 3600) return `${Math.round(s / 3600)} h`;
  return `${Math.round(s / 86400)} d`;
}

function when(iso) {
  if (!iso) return "—";
  const d = new Date(iso);
  return d.toLocaleString(undefined, { dateStyle: "short", timeStyle: "short" });
}

function clock(iso) {
  if (!iso) return "—";
  return new Date(iso).toLocaleTimeString(undefined, { hour: "2-digit", minute: "2-digit", hour12: false });
}

// "failing for 4 runs since 04:57" (the day too when it began before today)
function failingText(failing) {
  if (!failing) return "";
  const since = new Date(failing.since);
  const today = new Date().toDateString() === since.toDateString();
  const at = today ? clock(failing.since) : `${since.toLocaleDateString()} ${clock(failing.since)}`;
  if (failing.at_least) return `failing for at least ${failing.runs} runs, since before ${at}`;
  return `failing for ${failing.runs} ${failing.runs === 1 ? "run" : "runs"} since ${at}`;
}

// Ozon's words for one failed source: "stocks: Invalid Api-Key (HTTP 404, code 5)"
function causeText(c) {
  const codes = [c.status ? `HTTP ${c.status}` : "", c.code !== null && c.code !== undefined ? `code ${c.code}` : ""].filter(Boolean).join(", ");
  return `${c.source}: ${c.message || "failed (see the task's log)"}${codes ? ` (${codes})` : ""}`;
}

function num(n) {
  return n === null || n === undefined ? "—" : Number(n).toLocaleString();
}

function shortMethod(path) {
  if (!path) return "—";
  return path.replace(/^\//, "");
}

function StatusBadge({ status, testId }) {
  return h(
    "span",
    {
      "data-testid": testId || "status",
      "data-status": status,
      style: {
        display: "inline-block",
        padding: "1px 8px",
        borderRadius: "10px",
        fontSize: "12px",
        fontWeight: 600,
        color: "#fff",
        background: COLORS[status] || MUTED,
      },
    },
    status,
  );
}

function RunningBadge({ running }) {
  if (!running) return null;
  return h(
    UiLink,
    { path: running.run_link, testId: "running", title: `run ${running.run_id} is in progress; the status is the last finished run's` },
    h(
      "span",
      {
        style: { display: "inline-block", marginLeft: "4px", padding: "0 6px", borderRadius: "10px", fontSize: "11px", color: "#fff", background: COLORS.running },
      },
      "running",
    ),
  );
}

function KeyBadge({ warning }) {
  if (!warning) return null;
  const days = Math.max(0, Math.floor(warning.days_left));
  const text = warning.expired ? "key expired" : `key expires in ${days} ${days === 1 ? "day" : "days"}`;
  return h(
    "span",
    {
      "data-testid": "key-warning",
      title: `the Api-Key expires ${when(warning.expires_at)}: issue a new one in Seller Center → Settings → API keys and update the account's connection`,
      style: { display: "inline-block", padding: "0 6px", borderRadius: "10px", fontSize: "11px", fontWeight: 600, color: "#fff", background: warning.expired ? COLORS.failed : COLORS.warning },
    },
    text,
  );
}

// Why, since when and what to do: under the account's name (whose reason already quotes Ozon), and
// in its details with each failed source's error
function Diagnosis({ row, full }) {
  const causes = full ? row.causes || [] : [];
  const action = row.action && (full || row.action !== NOTHING_TO_DO) ? row.action : null;
  if (!row.failing && causes.length === 0 && !action) return null;
  return h(
    "div",
    { style: { fontSize: "12px", maxWidth: full ? "900px" : "340px" }, "data-testid": "diagnosis" },
    row.failing ? h("div", { "data-testid": "failing", style: { color: COLORS.failed, fontWeight: 600 } }, failingText(row.failing)) : null,
    causes.length
      ? h(
          "ul",
          { style: { margin: "2px 0", paddingLeft: "16px" } },
          causes.map((c) => h("li", { key: c.source, "data-testid": "cause", "data-kind": c.kind, "data-failed-source": c.source }, causeText(c))),
        )
      : null,
    action ? h("div", { "data-testid": "action" }, h("strong", null, "What to do: "), action) : null,
  );
}

// A line of total stock. With ``axes`` (the account's 90 days) it has its scale: the highest and
// lowest totals on the left, the first and last dates below, and the latest value at its point.
function Sparkline({ points, width = 120, height = 28, testId = "sparkline", axes = false }) {
  if (!points || points.length === 0) {
    return h("span", { style: { color: MUTED, fontSize: "12px" } }, "no history");
  }
  const left = axes ? 64 : 1;
  const right = axes ? 70 : 1;
  const top = axes ? 8 : 0;
  const bottom = axes ? 18 : 0;
  const xs = points.map((p) => p[0]);
  const ys = points.map((p) => p[1]);
  const [x0, x1] = [Math.min(...xs), Math.max(...xs)];
  const [y0, y1] = [Math.min(...ys), Math.max(...ys)];
  const plotW = width - left - right;
  const plotH = height - top - bottom;
  const sx = (x) => (x1 === x0 ? left + plotW : left + ((x - x0) / (x1 - x0)) * plotW);
  const sy = (y) => (y1 === y0 ? top + plotH / 2 : top + plotH - 1 - ((y - y0) / (y1 - y0)) * (plotH - 2));
  const path = points.map((p) => `${sx(p[0]).toFixed(1)},${sy(p[1]).toFixed(1)}`).join(" ");
  const last = points[points.length - 1];
  const day = (t) => new Date(t * 1000).toLocaleDateString(undefined, { month: "short", day: "numeric" });
  const label = { fontSize: "11px", fill: MUTED };
  return h(
    "svg",
    { width, height, "data-testid": testId, role: "img", "aria-label": `total stock ${num(last[1])}` },
    h("title", null, `total stock (present, all types): ${num(last[1])} units at ${when(new Date(last[0] * 1000).toISOString())}`),
    axes
      ? h(
          "g",
          { "data-testid": "chart-axes" },
          h("line", { x1: left - 4, y1: top, x2: left - 4, y2: top + plotH, stroke: BORDER }),
          h("line", { x1: left - 4, y1: top + plotH, x2: left + plotW, y2: top + plotH, stroke: BORDER }),
          h("text", { x: left - 8, y: sy(y1) + 4, textAnchor: "end", style: label }, num(y1)),
          y1 !== y0 ? h("text", { x: left - 8, y: sy(y0) + 4, textAnchor: "end", style: label }, num(y0)) : null,
          h("text", { x: left, y: height - 4, style: label }, day(x0)),
          x1 !== x0 ? h("text", { x: left + plotW, y: height - 4, textAnchor: "end", style: label }, day(x1)) : null,
          h("text", { x: sx(last[0]) + 6, y: sy(last[1]) + 4, style: { ...label, fill: FG }, "data-testid": "chart-last" }, num(last[1])),
        )
      : null,
    points.length > 1
      ? h("polyline", { points: path, fill: "none", stroke: "#1a73e8", strokeWidth: 1.5 })
      : null,
    h("circle", { cx: sx(last[0]), cy: sy(last[1]), r: 2.5, fill: "#1a73e8" }),
  );
}

function WarehouseChart({ chart }) {
  const bars = chart.bars || [];
  if (bars.length === 0) {
    return h("p", { style: { color: MUTED } }, "No stock per warehouse loaded for this account.");
  }
  const rows = bars;
  const other = chart.other;
  const label = 230;
  const width = 760;
  const room = width - label - 80;
  const rowH = 20;
  const max = Math.max(1, ...rows.map((r) => r.free_to_sell + r.promised + r.reserved));
  const legendY = rows.length * rowH + 14;
  const chartSvg = h(
    "svg",
    {
      width,
      height: legendY + 12,
      "data-testid": "warehouse-chart",
      role: "img",
      "aria-label": "current stock by warehouse",
      style: { fontSize: "12px", fontFamily: "inherit" },
    },
    rows.map((r, i) => {
      let x = label;
      const y = i * rowH;
      const parts = ["free_to_sell", "promised", "reserved"].map((k) => {
        const w = (r[k] / max) * room;
        const rect = h(
          "rect",
          { key: k, x, y: y + 3, width: Math.max(0, w), height: rowH - 6, fill: BAR[k], "data-kind": k },
          h("title", null, `${r.warehouse}: ${k.replace(/_/g, " ")} ${num(r[k])}`),
        );
        x += w;
        return rect;
      });
      return h(
        "g",
        { key: r.warehouse, "data-testid": "warehouse-bar" },
        h("text", { x: label - 6, y: y + rowH / 2 + 4, textAnchor: "end", fill: FG }, r.warehouse.length > 34 ? r.warehouse.slice(0, 33) + "…" : r.warehouse),
        parts,
        h("text", { x: x + 4, y: y + rowH / 2 + 4, fill: MUTED }, num(r.free_to_sell + r.promised + r.reserved)),
      );
    }),
    ["free_to_sell", "promised", "reserved"].map((k, i) =>
      h(
        "g",
        { key: k },
        h("rect", { x: label + i * 120, y: legendY - 9, width: 10, height: 10, fill: BAR[k] }),
        h("text", { x: label + i * 120 + 14, y: legendY, fill: FG }, k.replace(/_/g, " ")),
      ),
    ),
  );
  const totals = chart.totals || {};
  return h(
    "div",
    null,
    chartSvg,
    h(
      "p",
      { style: { fontSize: "12px", color: MUTED, margin: "4px 0 0 0" }, "data-testid": "warehouse-totals" },
      other
        ? `and ${num(other.warehouses)} other warehouses: ${num(other.free_to_sell)} free to sell, ${num(other.promised)} promised, ${num(other.reserved)} reserved. `
        : "",
      `All ${num(totals.warehouses)} warehouses: ${num(totals.free_to_sell)} free to sell, ${num(totals.promised)} promised, ${num(totals.reserved)} reserved.`,
    ),
  );
}

const cell = { padding: "6px 8px", borderBottom: `1px solid ${BORDER}`, verticalAlign: "top", textAlign: "left" };
const head = { ...cell, fontWeight: 600, color: MUTED, fontSize: "12px", whiteSpace: "nowrap" };
const button = {
  border: `1px solid ${BORDER}`,
  borderRadius: "6px",
  padding: "2px 10px",
  background: "transparent",
  color: FG,
  cursor: "pointer",
};

function Sources({ sources }) {
  return h(
    "div",
    { style: { display: "grid", gap: "2px", fontSize: "12px" } },
    sources.map((s) =>
      h(
        "div",
        { key: s.source, "data-testid": "source", "data-source": s.source, title: s.method || "", style: { whiteSpace: "nowrap" } },
        h("span", { style: { color: s.missing ? COLORS.degraded : FG, fontWeight: s.missing ? 600 : 400 } }, s.source),
        " ",
        h("span", { style: { color: MUTED } }, s.as_of ? `${ago(s.age_s)} ago` : "never loaded"),
        s.missing ? h("span", { style: { color: COLORS.degraded } }, " · failed") : null,
      ),
    ),
  );
}

function Requests({ figures }) {
  if (!figures || figures.requests === undefined) return h("span", { style: { color: MUTED } }, "—");
  const fallbacks = Object.entries(figures.fallbacks || {});
  return h(
    "div",
    { style: { fontSize: "12px" }, "data-testid": "requests" },
    h("div", null, `${num(figures.requests)} requests`),
    h("div", { style: { color: figures.responses_429 ? COLORS.degraded : MUTED } }, `${num(figures.responses_429)} × 429`),
    fallbacks.map(([source, from]) =>
      h("div", { key: source, style: { color: COLORS.stale }, "data-testid": "fallback" }, `${source}: fell back from ${shortMethod(from)}`),
    ),
  );
}

function RejectRows({ name, runId, reason, source }) {
  const [offset, setOffset] = useState(0);
  const { data, error, loading } = useData(`accounts/${encodeURIComponent(name)}/rejects`, {
    run_id: runId,
    reason,
    source,
    limit: 20,
    offset,
  });
  if (error) return h("p", { style: { color: COLORS.failed } }, error);
  if (!data) return h("p", null, loading ? "Loading…" : "");
  return h(
    "div",
    { "data-testid": "reject-rows" },
    h(
      "table",
      { style: { borderCollapse: "collapse", width: "100%", fontSize: "12px" } },
      h("thead", null, h("tr", null, ["source", "reason", "record as Ozon sent it"].map((t) => h("th", { key: t, style: head }, t)))),
      h(
        "tbody",
        null,
        data.rows.map((r) =>
          h(
            "tr",
            { key: r.id, "data-testid": "reject-row" },
            h("td", { style: cell }, r.source),
            h("td", { style: cell }, r.reason),
            h("td", { style: { ...cell, fontFamily: "monospace", whiteSpace: "pre-wrap", wordBreak: "break-all" } }, JSON.stringify(r.record)),
          ),
        ),
      ),
    ),
    data.total > data.rows.length
      ? h(
          "div",
          { style: { marginTop: "4px" } },
          h("button", { style: button, disabled: offset === 0, onClick: () => setOffset(Math.max(0, offset - 20)) }, "‹"),
          ` ${offset + 1}–${offset + data.rows.length} of ${num(data.total)} `,
          h("button", { style: button, disabled: offset + 20 >= data.total, onClick: () => setOffset(offset + 20) }, "›"),
        )
      : null,
  );
}

function Mismatches({ name, status }) {
  const { data, error } = useData(`accounts/${encodeURIComponent(name)}/mismatches`, { limit: 20 });
  if (error) return h("p", { style: { color: COLORS.failed } }, error);
  if (!data) return h("p", null, "Loading…");
  if (data.compared === false) return h("p", { "data-testid": "mismatch-rows" }, `Not compared: ${data.why}.`);
  if (data.total === 0) {
    const what = status === "failed" ? "The tables kept from the last good load agree" : "The current tables agree";
    return h("p", { "data-testid": "mismatch-rows" }, `${what} for every FBO SKU.`);
  }
  return h(
    "div",
    { "data-testid": "mismatch-rows" },
    h("p", null, `${num(data.total)} FBO SKUs differ now between v4 present − reserved and the warehouse rows' free to sell:`),
    h(
      "table",
      { style: { borderCollapse: "collapse", fontSize: "12px" } },
      h("thead", null, h("tr", null, ["SKU", "v4 available", "Σ free to sell"].map((t) => h("th", { key: t, style: head }, t)))),
      h(
        "tbody",
        null,
        data.rows.map((r) => h("tr", { key: r.sku }, h("td", { style: cell }, String(r.sku)), h("td", { style: cell }, num(r.v4_available)), h("td", { style: cell }, num(r.warehouses_free_to_sell)))),
      ),
    ),
  );
}

function Section({ title, children, testId }) {
  return h(
    "section",
    { style: { margin: "12px 0" }, "data-testid": testId },
    h("h4", { style: { fontWeight: 600, margin: "0 0 6px 0" } }, title),
    children,
  );
}

// `name` is the account's name (the row's "name"), the routes' segment; `account` is the id shown
function AccountDetail({ account, name, openRejects }) {
  const { data, error } = useData(`accounts/${encodeURIComponent(name)}`);
  const [reason, setReason] = useState(null);
  const [showMismatches, setShowMismatches] = useState(false);
  const rejectsRef = useRef(null);
  useEffect(() => {
    if (openRejects && data && rejectsRef.current) rejectsRef.current.scrollIntoView({ block: "nearest" });
  }, [openRejects, data]);
  if (error) return h("p", { style: { color: COLORS.failed } }, error);
  if (!data) return h("p", null, "Loading…");
  const bySource = Object.entries(data.by_source || {});
  return h(
    "div",
    { "data-testid": "account-detail", "data-account": account, style: { padding: "8px 4px" } },
    h("p", { "data-testid": "status-reason" }, h(StatusBadge, { status: data.status }), h(RunningBadge, { running: data.running }), " ", data.reason || ""),
    h(Diagnosis, { row: data, full: true }),
    h(
      "p",
      { style: { fontSize: "13px" } },
      "Last load ",
      when(data.loaded_at),
      data.run_link ? [" · ", h(UiLink, { key: "l", path: data.run_link, testId: "detail-run-link" }, "run in the grid")] : null,
      data.task_link ? [" · ", h(UiLink, { key: "t", path: data.task_link }, "failed task")] : null,
      data.key_expires_at !== undefined
        ? [" · Api-Key expires ", h("span", { key: "k", "data-testid": "key-expiry" }, data.key_expires_at ? when(data.key_expires_at) : "unknown"), " ", h(KeyBadge, { key: "b", warning: data.key_warning })]
        : null,
    ),
    h(
      Section,
      { title: "Sources of the last run", testId: "detail-sources" },
      h(
        "table",
        { style: { borderCollapse: "collapse", fontSize: "12px" } },
        h(
          "thead",
          null,
          h("tr", null, ["source", "as of", "method", "fallback", "rows", "rejects", "requests", "429", "retries", "problem"].map((t) => h("th", { key: t, style: head }, t))),
        ),
        h(
          "tbody",
          null,
          bySource.map(([source, s]) => {
            const methods = Object.values(s.methods || {});
            const total = (k) => methods.reduce((a, m) => a + (m[k] || 0), 0);
            const row = (data.sources || []).find((x) => x.source === source);
            return h(
              "tr",
              { key: source },
              h("td", { style: cell }, source),
              h("td", { style: cell }, row && row.as_of ? `${when(row.as_of)} (${ago(row.age_s)} ago)` : s.as_of ? when(s.as_of) : "—"),
              h("td", { style: { ...cell, fontFamily: "monospace" } }, shortMethod(s.method)),
              h("td", { style: { ...cell, color: s.fallback_from ? COLORS.stale : MUTED } }, s.fallback_from ? `from ${shortMethod(s.fallback_from)}` : "—"),
              h("td", { style: cell }, num(s.rows)),
              h("td", { style: cell }, num(s.rejects)),
              h("td", { style: cell }, num(total("requests"))),
              h("td", { style: cell }, num(total("responses_429"))),
              h("td", { style: cell }, num(total("retries"))),
              h(
                "td",
                { style: { ...cell, color: s.error ? COLORS.failed : MUTED, maxWidth: "420px" }, "data-testid": s.error ? "source-error" : undefined, "data-field": s.field || undefined },
                s.error ? [s.field ? h("strong", { key: "f" }, `${s.field}: `) : null, s.error] : "—",
              ),
            );
          }),
        ),
      ),
    ),
    h(
      Section,
      { title: "Current stock by warehouse (FBO)", testId: "detail-warehouses" },
      h(WarehouseChart, { chart: data.warehouses || {} }),
    ),
    h(
      Section,
      { title: "Total stock over time (present, all types)" },
      h(Sparkline, { points: data.sparkline, width: 620, height: 110, testId: "history-chart", axes: true }),
    ),
    h(
      "div",
      { ref: rejectsRef },
      h(
        Section,
        { title: `Rejects of the last run: ${num(data.rejects)}`, testId: "reject-reasons" },
        (data.reject_reasons || []).length === 0
          ? h("p", { style: { color: MUTED } }, "No row was rejected.")
          : h(
              "ul",
              { style: { margin: 0, paddingLeft: "18px" } },
              data.reject_reasons.map((r) =>
                h(
                  "li",
                  { key: r.source + r.reason },
                  h(
                    "button",
                    {
                      style: { ...button, border: "none", textDecoration: "underline", padding: 0 },
                      "data-testid": "reject-reason",
                      onClick: () => setReason(reason && reason.reason === r.reason && reason.source === r.source ? null : r),
                    },
                    `${r.source}: ${r.reason}`,
                  ),
                  ` — ${num(r.rows)} ${r.rows === 1 ? "row" : "rows"}`,
                ),
              ),
            ),
        reason ? h(RejectRows, { name, runId: data.run_id, reason: reason.reason, source: reason.source }) : null,
      ),
    ),
    h(
      Section,
      {
        title: data.mismatches_compared === false
          ? "Cross-source mismatches: not compared"
          : `Cross-source mismatches now: ${num(data.mismatches_now)} (the last load counted ${num(data.mismatches)})`,
        testId: "mismatches",
      },
      h("button", { style: button, onClick: () => setShowMismatches(!showMismatches), "data-testid": "show-mismatches" }, showMismatches ? "hide" : "show the SKUs that differ now"),
      showMismatches ? h(Mismatches, { name, status: data.status }) : null,
    ),
    h(
      Section,
      { title: "Recent runs" },
      h(
        "table",
        { style: { borderCollapse: "collapse", fontSize: "12px" } },
        h("thead", null, h("tr", null, ["loaded", "status", "missing", "rejects", "mismatches", "history +/−", "run"].map((t) => h("th", { key: t, style: head }, t)))),
        h(
          "tbody",
          null,
          (data.runs || []).map((r) =>
            h(
              "tr",
              { key: r.run_id },
              h("td", { style: cell }, when(r.loaded_at)),
              h("td", { style: cell }, h(StatusBadge, { status: r.status === "complete" ? "complete" : r.status, testId: "run-status" })),
              h("td", { style: cell }, (r.missing || []).join(", ") || "—"),
              h("td", { style: cell }, num(r.rejects)),
              h("td", { style: cell }, num(r.mismatches)),
              h("td", { style: cell }, `+${num(r.history_opened)} / −${num(r.history_closed)}`),
              h("td", { style: cell }, h(UiLink, { path: r.run_link }, r.run_id)),
            ),
          ),
        ),
      ),
    ),
  );
}

function AccountRow({ row, showKey, open, onToggle }) {
  const columns = showKey ? 10 : 9;
  return h(
    React.Fragment,
    null,
    h(
      "tr",
      { "data-testid": "account-row", "data-account": row.account, "data-status": row.status },
      h("td", { style: { ...cell, whiteSpace: "nowrap" } }, h(StatusBadge, { status: row.status }), h(RunningBadge, { running: row.running })),
      h(
        "td",
        { style: cell },
        h(
          "button",
          {
            style: { ...button, border: "none", padding: 0, fontWeight: 600, textAlign: "left" },
            onClick: () => onToggle(open ? null : "details"),
            "data-testid": "account-name",
            title: "details",
          },
          (open ? "▾ " : "▸ ") + row.account,
        ),
        row.reason ? h("div", { style: { fontSize: "12px", color: MUTED, maxWidth: "340px" }, "data-testid": "reason" }, row.reason) : null,
        h(Diagnosis, { row }),
      ),
      h(
        "td",
        { style: { ...cell, fontSize: "12px" } },
        row.run_link ? h(UiLink, { path: row.run_link, testId: "run-link", title: row.airflow_run_id || row.run_id }, "grid") : "—",
        row.task_link ? h("div", null, h(UiLink, { path: row.task_link, testId: "task-link" }, "failed task")) : null,
        h("div", { style: { color: MUTED } }, when(row.loaded_at)),
      ),
      h(
        "td",
        { style: { ...cell, whiteSpace: "nowrap" }, "data-testid": "age" },
        row.snapshot_as_of ? ago(row.age_s) : row.never_loaded && row.never_loaded.length ? "never loaded" : "—",
      ),
      h("td", { style: cell }, h(Sources, { sources: row.sources })),
      h(
        "td",
        { style: cell },
        h(
          "button",
          {
            style: { ...button, color: row.rejects ? COLORS.failed : MUTED },
            onClick: () => onToggle(open === "rejects" ? null : "rejects"),
            "data-testid": "rejects",
            title: "rejected rows and their reasons",
          },
          num(row.rejects),
        ),
      ),
      h("td", { style: { ...cell, color: row.mismatches ? COLORS.degraded : MUTED }, "data-testid": "mismatches-count" }, num(row.mismatches)),
      h("td", { style: cell }, h(Requests, { figures: row.requests })),
      showKey
        ? h("td", { style: { ...cell, fontSize: "12px" }, "data-testid": "key-expiry" }, row.key_expires_at ? when(row.key_expires_at) : "—", row.key_warning ? h("div", null, h(KeyBadge, { warning: row.key_warning })) : null)
        : null,
      h("td", { style: cell }, h(Sparkline, { points: row.sparkline })),
    ),
    open
      ? h(
          "tr",
          null,
          h("td", { colSpan: columns, style: { ...cell, background: SUBTLE } }, h(AccountDetail, { account: row.account, name: row.name, openRejects: open === "rejects" })),
        )
      : null,
  );
}

function Counts({ counts, status, setStatus }) {
  return h(
    "div",
    { style: { display: "flex", gap: "8px", flexWrap: "wrap", alignItems: "center" } },
    STATUSES.map((s) =>
      h(
        "button",
        {
          key: s,
          "data-testid": `count-${s}`,
          "data-count": counts ? counts[s] : 0,
          onClick: () => setStatus(status === s ? "" : s),
          style: {
            ...button,
            borderColor: COLORS[s],
            background: status === s ? COLORS[s] : "transparent",
            color: status === s ? "#fff" : FG,
          },
        },
        `${counts ? counts[s] : 0} ${s}`,
      ),
    ),
  );
}

function Page({ dagId }) {
  const [page, setPage] = useState(1);
  const [query, setQuery] = useState(() => new URLSearchParams(globalThis.location ? globalThis.location.search : "").get("q") || "");
  const [status, setStatus] = useState("");
  const [open, setOpen] = useState({});
  const params = useMemo(() => ({ page, page_size: 25, q: query, status }), [page, query, status]);
  const { data, error, loading, ms } = useData("accounts", params, 60000);
  if (dagId && dagId !== DAG_ID) {
    return h(
      "div",
      { style: { padding: "16px" } },
      h("p", null, "Ozon inventory shows the accounts of ", h(UiLink, { path: `dags/${DAG_ID}/plugin/ozon-inventory-dag` }, DAG_ID), "."),
    );
  }
  return h(
    "div",
    { "data-testid": "ozon-inventory", style: { padding: "12px 16px", color: FG } },
    h(
      "div",
      { style: { display: "flex", gap: "16px", alignItems: "baseline", flexWrap: "wrap" } },
      h("h2", { style: { fontSize: "20px", fontWeight: 700, margin: 0 } }, "Ozon inventory"),
      h("span", { style: { color: MUTED } }, data ? `${num(data.total)} accounts · worst first` : ""),
      data ? h("span", { style: { color: MUTED, fontSize: "12px" }, "data-testid": "load-ms" }, `updated ${when(data.generated_at)}${ms ? ` in ${Math.round(ms)} ms` : ""}`) : null,
    ),
    h(
      "div",
      { style: { display: "flex", gap: "12px", margin: "10px 0", flexWrap: "wrap" } },
      h(Counts, { counts: data && data.counts, status, setStatus: (s) => (setStatus(s), setPage(1)) }),
      h("input", {
        placeholder: "account…",
        value: query,
        "data-testid": "search",
        onChange: (e) => (setQuery(e.target.value), setPage(1)),
        style: { ...button, cursor: "text", minWidth: "200px" },
      }),
    ),
    error ? h("p", { style: { color: COLORS.failed }, "data-testid": "error" }, error) : null,
    !data && loading ? h("p", null, "Loading…") : null,
    data && data.total === 0
      ? h("p", { "data-testid": "empty" }, "Nothing loaded yet: the target database has no runs of ", DAG_ID, ".")
      : null,
    data && data.accounts.length > 0
      ? h(
          "div",
          { style: { overflowX: "auto", maxWidth: "100%" } },
          h(
          "table",
          { style: { borderCollapse: "collapse", width: "100%", fontSize: "13px" }, "data-testid": "accounts" },
          h(
            "thead",
            null,
            h(
              "tr",
              null,
              ["status", "account", "last run", "snapshot age", "sources (as of)", "rejects", "mismatches", "requests", ...(data.key_expiry ? ["key expires"] : []), "total stock"].map((t) =>
                h("th", { key: t, style: head }, t),
              ),
            ),
          ),
          h(
            "tbody",
            null,
            data.accounts.map((row) =>
              h(AccountRow, {
                key: row.account,
                row,
                showKey: data.key_expiry,
                open: open[row.account] || null,
                onToggle: (what) => setOpen({ ...open, [row.account]: what }),
              }),
            ),
          ),
          ),
        )
      : null,
    data && data.pages > 1
      ? h(
          "div",
          { style: { marginTop: "10px", display: "flex", gap: "8px", alignItems: "center" }, "data-testid": "pager" },
          h("button", { style: button, disabled: page <= 1, onClick: () => setPage(page - 1), "data-testid": "prev" }, "‹ previous"),
          h("span", { "data-testid": "page-of" }, `page ${data.page} of ${data.pages} (${num(data.matching)} accounts)`),
          h("button", { style: button, disabled: page >= data.pages, onClick: () => setPage(page + 1), "data-testid": "next" }, "next ›"),
        )
      : null,
  );
}

function Widget() {
  const { data, error } = useData("summary", null, 60000);
  return h(
    "div",
    {
      "data-testid": "ozon-inventory-widget",
      style: { border: `1px solid ${BORDER}`, borderRadius: "8px", padding: "12px 16px", margin: "8px 0", color: FG },
    },
    h(
      "div",
      { style: { display: "flex", gap: "12px", alignItems: "baseline", flexWrap: "wrap" } },
      h("strong", null, "Ozon inventory"),
      data ? h("span", { style: { color: MUTED } }, `${num(data.total)} accounts`) : null,
      h(UiLink, { path: "plugin/ozon-inventory", testId: "widget-open" }, "open"),
    ),
    error ? h("p", { style: { color: COLORS.failed } }, error) : null,
    data
      ? h(
          "div",
          { style: { display: "flex", gap: "10px", margin: "6px 0", flexWrap: "wrap" } },
          STATUSES.filter((s) => data.counts[s] > 0 || s === "complete").map((s) =>
            h("span", { key: s, "data-testid": `widget-${s}`, "data-count": data.counts[s] }, h(StatusBadge, { status: s, testId: "widget-status" }), ` ${num(data.counts[s])}`),
          ),
        )
      : null,
    data && data.worst.length
      ? h(
          "ul",
          { style: { margin: 0, paddingLeft: "18px", fontSize: "13px" } },
          data.worst.map((a) =>
            h(
              "li",
              { key: a.account, "data-testid": "widget-account", "data-account": a.account, "data-status": a.status },
              h(UiLink, { path: `plugin/ozon-inventory?q=${encodeURIComponent(a.account)}`, testId: "widget-account-link" }, h("strong", null, a.account)),
              ` ${a.status}`,
              h(RunningBadge, { running: a.running }),
              a.failing ? ` · ${failingText(a.failing)}` : "",
              a.reason ? ` — ${a.reason}` : "",
            ),
          ),
        )
      : null,
  );
}

globalThis["Ozon inventory"] = Page;
globalThis["Ozon inventory summary"] = Widget;
globalThis.AirflowPlugin = Page;
export { Page, Widget };
export default Page;
