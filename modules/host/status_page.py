"""The status page at ``/``: plain server-rendered HTML, no scripts.

Each configured module gets a card: its state (ok, degraded, unavailable,
error), what it is, how many objects it holds, a capacity bar, and for a
module with locations (a replica) one row per location with its health and
its own capacity bar. Everything shown is escaped; arguments that look
secret are masked.
"""
import html
import json
import time
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Tuple

from modules.reports import STATUS_DEGRADED, STATUS_OK, statistics_status, status_word
from modules.redaction import redact
from modules.host.eggs import egg_report
from modules.host.store import ModuleConfig

__all__ = ["ModuleView", "render_status_page", "module_state"]

#: Seconds between automatic reloads of the page.
REFRESH_SECONDS = 30


@dataclass
class ModuleView:
    """What the page shows about one module."""

    config: ModuleConfig
    statistics: Optional[Dict[str, Any]]
    error: Optional[str]
    objects: int
    pending_deletions: int
    used_by: List[str] = field(default_factory=list)


def module_state(view: ModuleView) -> Tuple[str, str]:
    """Return ``(state, reason)``: state is ``ok``, ``degraded``, ``unavailable`` or ``error``."""
    if view.statistics is None:
        return "error", view.error or "no statistics"
    stats = view.statistics
    state, reason = statistics_status(stats)
    if state == STATUS_DEGRADED and not reason and stats.get("degraded"):
        reason = _reason_text(stats.get("degraded"), stats)
    return state, reason


def _reason_text(degraded: Any, stats: Dict[str, Any]) -> str:
    if isinstance(degraded, str):
        return degraded
    if isinstance(degraded, (list, tuple)):
        return "not healthy: " + ", ".join(map(str, degraded))
    reason = stats.get("degraded_reason") or stats.get("reason")
    if reason:
        return str(reason)
    bad = [name for name, location in _locations(stats) if _location_health(location)[0] != "ok"]
    return ("not healthy: " + ", ".join(bad)) if bad else "some copies are missing"


def _locations(stats: Dict[str, Any]) -> List[Tuple[str, Dict[str, Any]]]:
    """Return ``[(name, stats)]`` from a ``locations`` list or mapping (empty when absent)."""
    locations = stats.get("locations")
    result = []
    if isinstance(locations, dict):
        for name, value in locations.items():
            result.append((str(name), value if isinstance(value, dict) else {"value": value}))
    elif isinstance(locations, list):
        for index, value in enumerate(locations):
            if isinstance(value, dict):
                name = value.get("name") or value.get("location") or "location %d" % (index + 1)
                result.append((str(name), value))
    return result


def _location_health(location: Dict[str, Any]) -> Tuple[str, str]:
    """Return ``('ok'|'down', reason)`` for one location's statistics."""
    reason = str(location.get("reason") or location.get("error") or location.get("last_error")
                 or "")
    for key in ("healthy", "available", "up"):
        if isinstance(location.get(key), bool):
            return ("ok", "") if location[key] else ("down", reason or "unhealthy")
    for key in ("health", "status", "state"):
        value = location.get(key)
        if isinstance(value, str):
            return ("ok", "") if status_word(value) == STATUS_OK else ("down", reason or value)
        if isinstance(value, dict):
            return _location_health(value)
    return "ok", ""


def _capacity(stats: Optional[Dict[str, Any]]) -> Tuple[int, int, int]:
    capacity = (stats or {}).get("capacity") or {}
    if not isinstance(capacity, dict):
        return -1, -1, -1

    def number(name: str) -> int:
        value = capacity.get(name, -1)
        return int(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else -1

    return number("total"), number("free"), number("used")


def _size(value: int) -> str:
    if value < 0:
        return "unknown"
    amount = float(value)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if amount < 1024 or unit == "PiB":
            return ("%d %s" % (amount, unit)) if unit == "B" else ("%.1f %s" % (amount, unit))
        amount /= 1024
    return "%d B" % value  # pragma: no cover


def _bar(stats: Optional[Dict[str, Any]], label: str) -> str:
    total, free, used = _capacity(stats)
    if total <= 0:
        if used >= 0:
            text = "%s used, total unknown" % _size(used)
        else:
            text = "capacity unknown"
        return ('<div class="bar unknown" role="img" aria-label="%s: %s"><span class="text">%s'
                '</span></div>' % (_e(label), _e(text), _e(text)))
    if used < 0:
        used = max(0, total - free) if free >= 0 else 0
    percent = min(100.0, max(0.0, 100.0 * used / total))
    level = "high" if percent >= 95 else "warn" if percent >= 80 else "fine"
    text = "%s of %s used (%.0f%%), %s free" % (_size(used), _size(total), percent,
                                                _size(free) if free >= 0 else "unknown")
    return ('<div class="bar" role="img" aria-label="%s: %s"><div class="fill %s" '
            'style="width:%.1f%%"></div><span class="text">%s</span></div>'
            % (_e(label), _e(text), level, percent, _e(text)))


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _plural(count: int, singular: str, plural: Optional[str] = None) -> str:
    return "%d %s" % (count, singular if count == 1 else (plural or singular + "s"))


def _fill_text(location: Dict[str, Any], objects: int) -> str:
    """A replica location's fill: objects it holds (last repair) of those in the index."""
    fill = location.get("fill")
    notes = [location["placement_note"]] if location.get("placement_note") else []
    if isinstance(fill, dict) and isinstance(fill.get("holds"), int):
        notes.insert(0, "holds %d of %d objects (%.0f%%, last vsm repair)" % (
            fill["holds"], objects, 100.0 * fill["holds"] / objects if objects else 100.0))
        if location.get("draining"):
            needed = fill.get("needed")
            notes.append("draining: can be removed" if needed == 0 and fill.get("objects", 0)
                         >= objects else "draining: %s still need it (run vsm repair)"
                         % _plural(needed or 0, "object"))
    elif location.get("draining"):
        notes.append("draining: run vsm repair to see when it can be removed")
    return "".join('<div class="fill-count">%s</div>' % _e(note) for note in notes)


def _module_card(view: ModuleView) -> str:
    config = view.config
    state, reason = module_state(view)
    parts = ['<section class="module %s" id="module-%s" data-module="%s" data-state="%s">' % (
        state, _e(config.name), _e(config.name), state)]
    parts.append('<h2><span class="name">%s</span> <span class="badge %s">%s</span></h2>' % (
        _e(config.name), state, state.upper()))
    if reason:
        parts.append('<p class="reason">%s</p>' % _e(reason))
    parts.append('<p class="what"><code>%s</code>%s</p>' % (
        _e(config.module), (" &mdash; " + _e(config.description)) if config.description else ""))
    facts = []
    if view.objects or not view.used_by:
        facts.append(_plural(view.objects, "object"))
    if view.used_by:
        facts.append("location of " + ", ".join(view.used_by))
    stats = view.statistics or {}
    if isinstance(stats.get("healthy"), int) and isinstance(stats.get("replicas"), int):
        facts.append("%d of %d locations healthy" % (stats["healthy"], stats["replicas"]))
    if isinstance(stats.get("write_quorum"), int):
        facts.append("write quorum %d" % stats["write_quorum"])
    if isinstance(stats.get("under_replicated"), int) and stats["under_replicated"]:
        facts.append("%s to refill (vsm repair)" % _plural(stats["under_replicated"],
                                                            "missing copy", "missing copies"))
    if isinstance(stats.get("pending_deletes"), int) and stats["pending_deletes"]:
        facts.append("%s pending at locations" % _plural(stats["pending_deletes"], "deletion"))
    if view.pending_deletions:
        facts.append("%s pending (vsm repair)" % _plural(view.pending_deletions, "deletion"))
    parts.append('<p class="facts">%s</p>' % _e(" · ".join(facts)))
    parts.append(_bar(view.statistics, "capacity of " + config.name))
    locations = _locations(view.statistics or {})
    if locations:
        parts.append('<table class="locations"><thead><tr><th>Location</th><th>Health</th>'
                     '<th>Capacity</th></tr></thead><tbody>')
        for name, location in locations:
            health, why = _location_health(location)
            # reads and writes have their own health (a replica location, issue 9)
            directions = " ".join(
                '<span class="direction %s">%s: %s</span>' % (
                    _e(location[key]), word, _e(location[key]))
                for word, key in (("reads", "read_health"), ("writes", "write_health"))
                if isinstance(location.get(key), str))
            parts.append('<tr class="location %s" data-location="%s"><td class="lname">%s</td>'
                         '<td><span class="badge %s">%s</span>%s%s</td><td>%s</td></tr>' % (
                             health, _e(name), _e(name), health,
                             "HEALTHY" if health == "ok" else "DOWN",
                             (' <span class="directions">%s</span>' % directions)
                             if directions else "",
                             ('<div class="why">%s</div>' % _e(why)) if why else "",
                             _bar(location, "capacity of " + name)
                             + _fill_text(location, view.objects)))
        parts.append("</tbody></table>")
    details = {"args": redact(config.args), "revision": config.revision}
    if view.statistics is not None:
        details["statistics"] = view.statistics
    parts.append('<details><summary>Configuration and raw statistics</summary><pre>%s</pre>'
                 '</details>' % _e(json.dumps(details, indent=2, sort_keys=True, default=str)))
    parts.append("</section>")
    return "\n".join(parts)


def render_status_page(views: List[ModuleView], data_dir: str) -> bytes:
    """Return the status page as UTF-8 HTML."""
    states = [module_state(view)[0] for view in views]
    problems = sum(1 for state in states if state != "ok")
    if not views:
        summary = ("No module is configured. Configure one with PUT "
                   "/cdmi/system_configuration/vendor_modules/&lt;name&gt;.")
        overall = "ok"
    elif problems:
        summary = "%d of %d modules need attention." % (problems, len(views))
        overall = "degraded"
    else:
        summary = "All %d modules are healthy." % len(views)
        overall = "ok"
    # Policies with locations (replicas) first: they are what clients store through.
    ordered = sorted(views, key=lambda view: (not _locations(view.statistics or {}),
                                              view.config.name))
    cards = "\n".join(_module_card(view) for view in ordered)
    page = _TEMPLATE % {
        "refresh": REFRESH_SECONDS,
        "overall": overall,
        "summary": summary,
        "data_dir": _e(data_dir),
        "time": _e(time.strftime("%Y-%m-%d %H:%M:%S %Z")),
        "cards": cards,
        "eggs": _eggs_section(egg_report(data_dir)),
    }
    return page.encode("utf-8")


def _eggs_section(eggs: List[Dict[str, str]]) -> str:
    """The loaded eggs with their versions; a changed or new egg says to restart."""
    items = ['<li class="egg %s" data-egg="%s"><code>%s %s</code>%s</li>' % (
        _e(egg["state"]), _e(egg["name"]), _e(egg["name"]), _e(egg["version"]),
        (' <span class="reason">%s</span>' % _e(egg["note"])) if egg["note"] else "")
        for egg in eggs]
    return ('<section class="eggs" id="eggs"><h2>Eggs</h2><ul>%s</ul></section>' % "".join(items)
            if items else "")


_TEMPLATE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="refresh" content="%(refresh)d">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>vsm host status</title>
<style>
body { font: 15px/1.4 system-ui, sans-serif; margin: 0; background: #f4f5f7; color: #1d2330; }
header { background: #1d2330; color: #fff; padding: 14px 24px; }
header h1 { margin: 0; font-size: 20px; }
header p { margin: 4px 0 0; color: #b9c0cf; font-size: 13px; }
main { padding: 16px 24px; max-width: 1100px; }
.summary { padding: 10px 14px; border-radius: 6px; margin-bottom: 16px; font-weight: 600; }
.summary.ok { background: #e3f6e8; color: #145c2c; }
.summary.degraded { background: #fdecea; color: #8a1c12; }
section.module { background: #fff; border-radius: 8px; padding: 14px 18px; margin-bottom: 16px;
  border-left: 6px solid #2f9e55; box-shadow: 0 1px 2px rgba(0,0,0,.08); }
section.module.degraded { border-left-color: #e0a100; }
section.module.unavailable, section.module.error { border-left-color: #d93025; }
h2 { margin: 0 0 6px; font-size: 18px; }
.badge { display: inline-block; font-size: 12px; font-weight: 700; padding: 2px 8px;
  border-radius: 10px; vertical-align: middle; color: #fff; background: #2f9e55; }
.badge.degraded { background: #e0a100; }
.badge.unavailable, .badge.error, .badge.down { background: #d93025; }
.reason { margin: 4px 0; color: #8a1c12; font-weight: 600; }
.what, .facts { margin: 4px 0; color: #4a5468; }
.bar { position: relative; height: 22px; background: #e6e9ef; border-radius: 4px;
  overflow: hidden; min-width: 260px; margin: 6px 0; }
.bar .fill { position: absolute; left: 0; top: 0; bottom: 0; background: #8fd5a6; }
.bar .fill.warn { background: #f5cf6b; }
.bar .fill.high { background: #f29b92; }
.bar.unknown { background: repeating-linear-gradient(45deg, #eceff4, #eceff4 8px, #e1e5ec 8px,
  #e1e5ec 16px); }
.bar .text { position: relative; padding-left: 8px; font-size: 12px; line-height: 22px;
  text-shadow: 0 0 3px #fff, 0 0 2px #fff; }
table.locations { border-collapse: collapse; width: 100%%; margin-top: 8px; }
table.locations th { text-align: left; font-size: 12px; color: #6b7487; padding: 4px 8px;
  border-bottom: 1px solid #e6e9ef; }
table.locations td { padding: 6px 8px; border-bottom: 1px solid #f0f2f5; vertical-align: top; }
table.locations td.lname { font-weight: 600; white-space: nowrap; }
tr.location.down td.lname { color: #d93025; }
.why { font-size: 12px; color: #8a1c12; margin-top: 2px; max-width: 340px; }
details { margin-top: 8px; font-size: 13px; }
pre { background: #f6f8fa; padding: 8px; overflow-x: auto; font-size: 12px; }
</style>
</head>
<body>
<header><h1>vsm host</h1><p>Data directory %(data_dir)s &middot; %(time)s &middot; reloads
every %(refresh)d s</p></header>
<main>
<div class="summary %(overall)s" id="summary">%(summary)s</div>
%(cards)s
%(eggs)s
</main>
</body>
</html>
"""
