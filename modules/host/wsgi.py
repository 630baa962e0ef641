"""``modules.host.wsgi:application``: the entry point for gunicorn and mod_wsgi.

The data directory comes from the environment variable ``VSM_DATA_DIR``
(default ``./vsm-data``), the administrator's password from
``VSM_ADMIN_PASSWORD`` or the data directory's ``admin-password`` file::

    VSM_DATA_DIR=/srv/vsm gunicorn --threads 8 modules.host.wsgi:application

The application is built when this module is first imported, after the
eggs in the data directory's ``eggs/`` folder are put on the path (see
:mod:`modules.host.eggs`).
"""
import os

from modules.host.app import make_app
from modules.host.eggs import egg_paths, load_eggs

__all__ = ["application", "DATA_DIR_ENV", "DEFAULT_DATA_DIR"]

#: Environment variable naming the data directory.
DATA_DIR_ENV = "VSM_DATA_DIR"

#: The data directory when the variable is not set.
DEFAULT_DATA_DIR = "vsm-data"

_data_dir = os.environ.get(DATA_DIR_ENV) or DEFAULT_DATA_DIR
load_eggs(egg_paths(_data_dir))  # the data directory's eggs/*.egg, before any module loads
application = make_app(_data_dir)
