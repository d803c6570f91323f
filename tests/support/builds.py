"""A fresh cache whose datastores are built only when the test says so: what a request does while a store builds
is then an order of events, not a race against a fast machine."""
import threading

from app.core import datastore, paths

LIMIT_S = 300  # a build waits at most this long, so that a failed test never hangs


def held_builds(patch, cache) -> threading.Event:
    """Points the cache at an empty folder and holds every datastore build until the returned event is set (patch: a
    pytest MonkeyPatch)."""
    patch.setattr(paths, "CACHE", cache)
    release, build = threading.Event(), datastore.load_or_build

    def held(*args, **kwargs):
        release.wait(LIMIT_S)
        return build(*args, **kwargs)

    patch.setattr(datastore, "load_or_build", held)
    return release
