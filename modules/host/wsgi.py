"""``modules.host.wsgi:application``: the entry point for gunicorn and mod_wsgi.

The application is the same stack ``vsm serve`` runs
(:func:`modules.host.pipeline.build_application`), configured from the
environment:

* ``VSM_DATA_DIR``: the data directory (default ``./vsm-data``);
* ``VSM_ADMIN_PASSWORD``: the administrator's password (default: the data
  directory's ``admin-password`` file);
* ``VSM_ACCESS_LOG``: ``-`` (standard error, the default), ``off`` or a file;
* ``VSM_METRICS``: ``auth`` (``/metrics`` behind the login, the default),
  ``public`` or ``off``.

::

    VSM_DATA_DIR=/srv/vsm gunicorn --threads 8 modules.host.wsgi:application

The application is built when this module is first imported, after the
eggs in the data directory's ``eggs/`` folder are put on the path (see
:mod:`modules.host.eggs`).
"""
import os

from modules.host.access_log import OFF, STDERR, configure_access_log
from modules.host.app import make_app
from modules.host.eggs import egg_paths, load_eggs
from modules.host.pipeline import METRICS_AUTH, build_application

__all__ = ["application", "DATA_DIR_ENV", "DEFAULT_DATA_DIR", "ACCESS_LOG_ENV", "METRICS_ENV"]

#: Environment variable naming the data directory.
DATA_DIR_ENV = "VSM_DATA_DIR"

#: The data directory when the variable is not set.
DEFAULT_DATA_DIR = "vsm-data"

#: Environment variable: where the access log goes.
ACCESS_LOG_ENV = "VSM_ACCESS_LOG"

#: Environment variable: how ``/metrics`` is served.
METRICS_ENV = "VSM_METRICS"

_data_dir = os.environ.get(DATA_DIR_ENV) or DEFAULT_DATA_DIR
load_eggs(egg_paths(_data_dir))  # the data directory's eggs/*.egg, before any module loads
_access_log = os.environ.get(ACCESS_LOG_ENV) or STDERR
configure_access_log(_access_log)
application = build_application(make_app(_data_dir), access_log=_access_log != OFF,
                                metrics=os.environ.get(METRICS_ENV) or METRICS_AUTH)
