"""``[core] hostname_callable`` of the proof's workers: the address the worker's host is reached at.

A network namespace keeps the machine's host name, so both workers would report the same
``socket.getfqdn()``; each worker instead names its own veth address (``OZON_PROOF_HOSTNAME``), which
is what the task instance's ``hostname`` shows and where the api-server fetches a task's log from.
"""

from __future__ import annotations

import os
import socket


def get_hostname() -> str:
    return os.environ.get("OZON_PROOF_HOSTNAME") or socket.getfqdn()
