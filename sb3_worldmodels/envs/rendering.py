"""Selection of the MuJoCo OpenGL backend (``MUJOCO_GL``) for headless machines.

dm_control and mujoco read ``MUJOCO_GL`` / ``PYOPENGL_PLATFORM`` once, when they are first
imported, so :func:`configure_mujoco_gl` must run before that. It is cheap and is called on
package import and again right before dm_control is imported.
"""

from __future__ import annotations

import ctypes
import functools
import os
import sys
from collections.abc import MutableMapping

__all__ = ["configure_mujoco_gl", "egl_available"]

# Modules that freeze the GL platform once imported: changing the variables afterwards would
# only make them disagree with the backend actually in use.
_GL_LOCKING_MODULES = ("OpenGL", "dm_control._render")


@functools.lru_cache(maxsize=1)
def egl_available() -> bool:
    """Return whether an EGL library can be loaded (``libEGL.so.1``, e.g. Mesa or NVIDIA)."""
    try:
        ctypes.CDLL("libEGL.so.1")
    except OSError:
        return False
    return True


def configure_mujoco_gl(environ: MutableMapping[str, str] | None = None) -> str | None:
    """Choose the MuJoCo rendering backend if the user did not, and return the backend in use.

    * ``MUJOCO_GL`` already set: kept as is.
    * Linux without a display (no ``DISPLAY`` / ``WAYLAND_DISPLAY``): ``"egl"`` when an EGL
      library loads (Mesa's works on CPU-only machines), otherwise ``"osmesa"``.
    * With a display, or on macOS/Windows: left unset, so mujoco uses its default (glfw).

    ``PYOPENGL_PLATFORM`` is set to match egl/osmesa when unset. Nothing is changed once
    PyOpenGL or dm_control's renderer has been imported (too late to switch; never raises).

    Args:
        environ: Mapping to read and update instead of ``os.environ`` (for tests); the
            "already imported" check only applies to ``os.environ``.

    Returns:
        The value of ``MUJOCO_GL`` after the call, or ``None`` for mujoco's default.
    """
    env = os.environ if environ is None else environ
    backend = env.get("MUJOCO_GL") or None
    if environ is None and any(m in sys.modules for m in _GL_LOCKING_MODULES):
        return backend  # the process' GL platform is already fixed; leave everything alone
    if backend is None:
        headless = not (env.get("DISPLAY") or env.get("WAYLAND_DISPLAY"))
        if not (headless and sys.platform.startswith("linux")):
            return None
        backend = "egl" if egl_available() else "osmesa"
        env["MUJOCO_GL"] = backend
    if backend.lower() in ("egl", "osmesa") and not env.get("PYOPENGL_PLATFORM"):
        env["PYOPENGL_PLATFORM"] = backend.lower()
    return backend
