# Airflow 3.3 with the project's pinned requirements; dags/, plugins/ and include/ are mounted.
FROM apache/airflow:3.3.2-python3.11
COPY requirements.txt constraints.txt /requirements/
RUN pip install --no-cache-dir -r /requirements/requirements.txt -c /requirements/constraints.txt
# The project's provider metadata (the `ozon` connection type); its code is mounted at run time.
COPY --chown=airflow:0 pyproject.toml /opt/ozon-inventory/
COPY --chown=airflow:0 plugins /opt/ozon-inventory/plugins
RUN pip install --no-cache-dir --no-deps /opt/ozon-inventory
