"""The Celery scale-out proof (``bash scripts/celery_proof.sh``): not part of the pytest suite.

``topology`` builds the hosts (network namespaces on a bridge) and the services on the host side,
``simhost`` is the Ozon simulator process with every proof account, ``proof`` runs the scenarios.
"""
