# Sourced by scripts/test.sh: the Debian packages the tests need beyond Python and PostgreSQL,
# installed through apt when missing (as root, or with sudo).
#   chromium  - the browser test drives Debian's Chromium through Playwright (no browser download);
#   faketime  - OZON_TEST_CLOCK runs the suite with the machine's clock moved (libfaketime).
# On a machine without apt, the missing commands are named and the script stops.
missing=()
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
command -v faketime >/dev/null 2>&1 || missing+=(faketime)
command -v gcc >/dev/null 2>&1 || missing+=(gcc)  # builds scripts/faketime/waits.c
if [ ${#missing[@]} -gt 0 ]; then
  if ! command -v apt-get >/dev/null 2>&1; then
    echo "the tests need these commands: ${missing[*]} (Debian packages of the same names);" \
      "install them and run again" >&2
    exit 1
  fi
  sudo=""
  if [ "$(id -u)" != "0" ]; then
    if ! command -v sudo >/dev/null 2>&1; then
      echo "the tests need the Debian packages ${missing[*]}: run as root or install sudo" >&2
      exit 1
    fi
    sudo="sudo"
  fi
  echo "installing Debian packages: ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
fi
