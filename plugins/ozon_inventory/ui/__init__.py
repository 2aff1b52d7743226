"""The "Ozon inventory" page of the Airflow UI: a FastAPI app (``app.py``) mounted by the plugin
``plugins/ozon_inventory_plugin.py``, its queries (``queries.py``, ``airflow_state.py``) and its
browser code (``static/``). Imported by the api-server only, never by the DAG's tasks.
"""
