"""The host: run storage modules the way the platform does.

``make_app(data_dir)`` returns a plain WSGI application (cheroot,
gunicorn, mod_wsgi) serving:

* ``/cdmi/system_configuration/vendor_modules/<name>``: the provisioning API
  (configure, inspect, remove, repair modules);
* ``/objects/<policy>/<key>``: objects stored through a configured module;
* ``/``: the status page.

``vsm serve`` runs it on cheroot (:mod:`modules.host.server`), behind an
access log and ``/metrics`` (:mod:`modules.host.pipeline`), in pre-forked
worker processes (:mod:`modules.host.workers`);
``modules.host.wsgi:application`` is the entry point for other WSGI
servers. See docs/host.md.
"""
from modules.host.app import HostApp, make_app

__all__ = ["make_app", "HostApp"]
