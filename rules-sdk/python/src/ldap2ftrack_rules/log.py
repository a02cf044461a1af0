"""The host's log. In a module, messages go to ldap2ftrack's log tagged with the module's
name (print() goes nowhere: a module has no standard streams); in native tests they are kept
for `testing.take_logs()`."""

LEVELS = ("trace", "debug", "info", "warn", "error")

_kept = []


def _keep(level, message):
    _kept.append((level, message))


# Where messages go: kept natively; the component glue points this at the host's log.
_sink = _keep


def log(level, message):
    """Log a message at a level: "trace", "debug", "info", "warn" or "error"."""
    if level not in LEVELS:
        raise ValueError("unknown log level %r (one of: %s)" % (level, ", ".join(LEVELS)))
    _sink(level, str(message))


def trace(message):
    """Log at trace level."""
    _sink("trace", str(message))


def debug(message):
    """Log at debug level."""
    _sink("debug", str(message))


def info(message):
    """Log at info level."""
    _sink("info", str(message))


def warn(message):
    """Log at warn level."""
    _sink("warn", str(message))


def error(message):
    """Log at error level."""
    _sink("error", str(message))
