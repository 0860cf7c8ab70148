"""Distracted DeepMind Control: DMC tasks whose looks are randomised at every reset.

In the spirit of DMC Remastered (Grigsby & Qi, 2020), ``make_dmcr("walker", "walk")`` builds the task
with :func:`~sb3_worldmodels.envs.dmc.make_dmc` and re-wraps it in :class:`DistractedDMCEnv`, which at
every reset draws seven visual factors (:data:`FACTORS`) by editing the MuJoCo model (materials,
textures re-uploaded to the renderer, lights, camera) and by drawing moving shapes into the rendered
scene. Nothing that the physics reads is touched, so the same seed and actions give the same physics
states with or without randomisation. ``background_video=`` pastes video frames over the pixels that
MuJoCo's segmentation pass labels as background (the sky).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import numpy as np

from sb3_worldmodels.envs import DMC_TASKS, dmc_env_id
from sb3_worldmodels.envs.base import register_ids
from sb3_worldmodels.envs.dmc import DMCEnv, make_dmc
from sb3_worldmodels.envs.textures import plane_texture, random_colors, skybox_texture

if TYPE_CHECKING:
    import mujoco
    from shimmy import DmControlCompatibilityV0

__all__ = ["FACTORS", "DistractedDMCEnv", "dmcr_env_id", "make_dmcr", "parse_vary", "register"]

#: The visual factors, in the order their random streams are drawn.
FACTORS: tuple[str, ...] = (
    "floor", "background", "body_color", "reflectance", "lighting", "camera", "distractors",
)  # fmt: skip

_VISUAL_STREAM = 0x0D3C  # keeps the visual generator apart from gymnasium's np_random for the same seed
_VISIBLE_GROUPS = 3  # MuJoCo shows geom groups 0, 1 and 2 by default


def parse_vary(vary: str | Iterable[str]) -> tuple[str, ...]:
    """Normalise ``vary`` to a tuple of factor names in :data:`FACTORS` order.

    Args:
        vary: ``"all"``, one factor name, or a sequence of factor names (``()`` for none).

    Returns:
        The selected factors.

    Raises:
        ValueError: An unknown factor name (the message lists the valid ones).
        TypeError: ``vary`` is neither a string nor an iterable of strings.
    """
    if isinstance(vary, str):
        names: tuple[str, ...] = FACTORS if vary == "all" else (vary,)
    elif isinstance(vary, Iterable):
        names = tuple(vary)
    else:
        raise TypeError(f"vary must be 'all', a factor name or a sequence of them ({FACTORS}); got {vary!r}")
    unknown = [name for name in names if name not in FACTORS]
    if unknown:
        raise ValueError(f"Unknown visual factor(s) {unknown}; valid factors: {FACTORS} (or vary='all')")
    return tuple(name for name in FACTORS if name in names)


def _visual_generator(seed: int | None) -> np.random.Generator:
    return np.random.default_rng(None if seed is None else [_VISUAL_STREAM, int(seed)])


def _rotation(axis: np.ndarray, angle: float) -> np.ndarray:
    """Rotation matrix of ``angle`` radians about ``axis`` (Rodrigues)."""
    x, y, z = axis / np.linalg.norm(axis)
    k = np.array([[0.0, -z, y], [z, 0.0, -x], [-y, x, 0.0]])
    return np.eye(3) + np.sin(angle) * k + (1.0 - np.cos(angle)) * (k @ k)


def _random_rotation(rng: np.random.Generator, max_degrees: float) -> np.ndarray:
    """Rotation about a uniformly random axis by an angle uniform in ``[0, max_degrees]``."""
    return _rotation(rng.normal(size=3), np.deg2rad(rng.uniform(0.0, max_degrees)))


class _ModelRandomizer:
    """Draws the six model-editing factors of a dm_control physics, always from the original values.

    Floors are the textured planes of the world body that lie flat; the background is the skybox and
    the other textured world planes (manipulator's backdrop); the body is every visible geom of a
    moving body, and skins (its materials, or its rgba when it has none).
    """

    def __init__(self, physics: Any, camera_id: int) -> None:
        import mujoco

        self.physics = physics
        self.model: mujoco.MjModel = physics.model.ptr
        m = self.model
        self.camera_id = camera_id
        rgb_role = int(mujoco.mjtTextureRole.mjTEXROLE_RGB)
        floor_mats, backdrop_mats, body_mats = set(), set(), set()
        moving, visible = m.geom_bodyid != 0, m.geom_group < _VISIBLE_GROUPS
        for g in range(m.ngeom):
            mat = int(m.geom_matid[g])
            if not moving[g] and m.geom_type[g] == mujoco.mjtGeom.mjGEOM_PLANE and mat >= 0:
                normal = np.zeros(3)
                mujoco.mju_rotVecQuat(normal, np.array([0.0, 0.0, 1.0]), m.geom_quat[g])
                (floor_mats if abs(normal[2]) > 0.9 else backdrop_mats).add(mat)
            elif moving[g] and visible[g] and mat >= 0:
                body_mats.add(mat)
        body_mats |= {int(mat) for mat in m.skin_matid if mat >= 0}
        names = [mujoco.mj_id2name(m, mujoco.mjtObj.mjOBJ_MATERIAL, i) for i in range(m.nmat)]
        # dm_control blends "self"/"effector"/"target" from their "_default" twins when it shows rewards.
        self.body_mats = [[i] + [j for j in range(m.nmat) if names[j] == f"{names[i]}_default"]
                          for i in sorted(body_mats)]  # fmt: skip
        self.floor_mats = sorted(floor_mats)
        self.body_geoms = [g for g in range(m.ngeom) if moving[g] and visible[g] and m.geom_matid[g] < 0]

        def textures(mats: set[int]) -> set[int]:
            return {int(m.mat_texid[i, rgb_role]) for i in mats if m.mat_texid[i, rgb_role] >= 0}

        flat = {t for t in textures(floor_mats) if m.tex_type[t] == mujoco.mjtTexture.mjTEXTURE_2D}
        self.floor_textures = sorted(flat)
        backdrop = {t for t in textures(backdrop_mats) if m.tex_type[t] == mujoco.mjtTexture.mjTEXTURE_2D} - flat
        self.skyboxes = [t for t in range(m.ntex) if m.tex_type[t] == mujoco.mjtTexture.mjTEXTURE_SKYBOX]
        self.backdrop_textures = sorted(backdrop)
        # Lights and the camera are drawn relative to their original pose and colour.
        fields = ("light_dir", "light_dir0", "light_diffuse",
                  "cam_pos", "cam_quat", "cam_pos0", "cam_poscom0", "cam_mat0")  # fmt: skip
        self.original = {name: np.array(getattr(m, name)) for name in fields}
        self.headlight = (np.array(m.vis.headlight.ambient), np.array(m.vis.headlight.diffuse))
        self._dirty_textures: set[int] = set()

    # ------------------------------------------------------------------ factors

    def floor(self, rng: np.random.Generator) -> None:
        """New floor textures."""
        for t in self.floor_textures:
            self._write_texture(t, plane_texture(rng, *self._shape(t)))

    def background(self, rng: np.random.Generator) -> None:
        """New skybox and backdrop textures."""
        for t in self.skyboxes:
            self._write_texture(t, skybox_texture(rng, int(self.model.tex_width[t])))
        for t in self.backdrop_textures:
            self._write_texture(t, plane_texture(rng, *self._shape(t)))

    def body_color(self, rng: np.random.Generator) -> None:
        """New colours of the body materials and of the body geoms without one."""
        m = self.model
        for group, color in zip(self.body_mats, random_colors(rng, len(self.body_mats))):
            m.mat_rgba[group, :3] = color
        if self.body_geoms:
            m.geom_rgba[self.body_geoms, :3] = random_colors(rng, len(self.body_geoms))

    def reflectance(self, rng: np.random.Generator) -> None:
        """New reflectance (floor), specular, shininess and emission (floor and body)."""
        m = self.model
        body = [i for group in self.body_mats for i in group]
        # Only planes and boxes mirror the scene, each at the cost of one more render pass: floors only.
        m.mat_reflectance[self.floor_mats] = rng.uniform(0.0, 0.8, len(self.floor_mats))
        for mats, max_emission in ((self.floor_mats, 0.3), (body, 0.5)):
            n = len(mats)
            m.mat_specular[mats] = rng.uniform(0.0, 1.0, n)
            m.mat_shininess[mats] = rng.uniform(0.0, 1.0, n)
            m.mat_emission[mats] = rng.uniform(0.0, max_emission, n)

    def lighting(self, rng: np.random.Generator) -> None:
        """New directions and colours of the lights and of the headlight."""
        m, orig = self.model, self.original

        def tint() -> np.ndarray:
            return random_colors(rng, 1, saturation=(0.0, 0.5), value=(1.0, 1.0))[0]

        for i in range(m.nlight):
            rot = _random_rotation(rng, 30.0)
            m.light_dir[i] = rot @ orig["light_dir"][i]
            m.light_dir0[i] = rot @ orig["light_dir0"][i]  # tracking lights keep their initial direction
            m.light_diffuse[i] = np.clip(orig["light_diffuse"][i] * rng.uniform(0.3, 1.2) * tint(), 0.0, 1.0)
        # DMC's headlight (ambient .4, diffuse .8) lights most of the scene; lit colours saturate at 1,
        # so the draws go below the default more than above it.
        ambient, diffuse = self.headlight
        color = tint()
        m.vis.headlight.ambient[:] = np.clip(ambient * rng.uniform(0.25, 1.25) * color, 0.0, 1.0)
        m.vis.headlight.diffuse[:] = np.clip(diffuse * rng.uniform(0.25, 1.0) * color, 0.0, 1.0)

    def camera(self, rng: np.random.Generator) -> None:
        """A small random move and turn of the observation camera, in its own frame."""
        import mujoco

        m, orig, c = self.model, self.original, self.camera_id
        rot = _random_rotation(rng, 5.0)  # in the camera's own frame
        shift = rng.uniform(-0.05, 0.05, 3) * float(m.stat.extent)  # along the camera's axes
        quat_rot = np.zeros(4)
        mujoco.mju_mat2Quat(quat_rot, rot.ravel())
        mujoco.mju_mulQuat(m.cam_quat[c], orig["cam_quat"][c], quat_rot)
        body_from_cam = np.zeros(9)
        mujoco.mju_quat2Mat(body_from_cam, orig["cam_quat"][c])
        m.cam_pos[c] = orig["cam_pos"][c] + body_from_cam.reshape(3, 3) @ shift
        # Tracking cameras are placed from their pose at qpos0 (mj_setConst), so move that too.
        world_from_cam = orig["cam_mat0"][c].reshape(3, 3)
        m.cam_mat0[c] = (world_from_cam @ rot).ravel()
        m.cam_pos0[c] = orig["cam_pos0"][c] + world_from_cam @ shift
        m.cam_poscom0[c] = orig["cam_poscom0"][c] + world_from_cam @ shift

    # ------------------------------------------------------------------ textures

    def _shape(self, tex: int) -> tuple[int, int]:
        return int(self.model.tex_height[tex]), int(self.model.tex_width[tex])

    def _write_texture(self, tex: int, image: np.ndarray) -> None:
        m = self.model
        adr, channels = int(m.tex_adr[tex]), int(m.tex_nchannel[tex])
        texels = m.tex_data[adr : adr + image.shape[0] * image.shape[1] * channels].reshape(-1, channels)
        texels[:, :3] = image.reshape(-1, 3)
        texels[:, 3:] = 255
        self._dirty_textures.add(tex)

    def upload_textures(self) -> None:
        """Send the textures changed since the last call to the renderer (creating it if needed)."""
        import mujoco

        if not self._dirty_textures:
            return
        contexts = self.physics.contexts
        with contexts.gl.make_current() as ctx:
            for tex in sorted(self._dirty_textures):
                ctx.call(mujoco.mjr_uploadTexture, self.model, contexts.mujoco.ptr, tex)
        self._dirty_textures.clear()


class _Distractors:
    """Coloured shapes drawn into the scene of the observation camera, moving over the episode.

    They are added to the ``mjvScene`` after MuJoCo built it (dm_control's ``scene_callback``), so
    they are never part of the model and cannot touch the physics. Each shape sits at a fixed depth
    in front of the camera (between 0.6 and 1.4 times the camera's distance to the model's centre of
    mass, so some pass in front of the robot and some behind it) and follows a Lissajous path in the
    image while spinning; its path is a function of the simulation time.
    """

    def __init__(self, camera_id: int, aspect: float) -> None:
        self.camera_id = camera_id
        self.aspect = aspect
        self.shapes: list[dict[str, Any]] = []

    def sample(self, rng: np.random.Generator) -> None:
        """Draw the shapes of a new episode."""
        import mujoco

        kinds = [mujoco.mjtGeom.mjGEOM_SPHERE, mujoco.mjtGeom.mjGEOM_BOX, mujoco.mjtGeom.mjGEOM_CAPSULE,
                 mujoco.mjtGeom.mjGEOM_ELLIPSOID, mujoco.mjtGeom.mjGEOM_CYLINDER]  # fmt: skip
        n = int(rng.integers(2, 6))
        colors = random_colors(rng, n, saturation=(0.5, 1.0), value=(0.5, 1.0))
        self.shapes = [
            {
                "type": int(kinds[int(rng.integers(len(kinds)))]),
                "rgba": np.append(colors[i], 1.0).astype(np.float32),
                "size": rng.uniform(0.06, 0.18) * rng.uniform(0.5, 1.0, 3),  # in half view heights
                "depth": rng.uniform(0.6, 1.4),  # in camera-to-centre-of-mass distances
                "center": rng.uniform(-0.6, 0.6, 2),
                "amplitude": rng.uniform(0.1, 0.4, 2),
                "frequency": rng.uniform(0.5, 2.0, 2),  # rad per simulated second
                "phase": rng.uniform(0.0, 2 * np.pi, 2),
                "spin_axis": rng.normal(size=3),
                "spin": rng.uniform(-2.0, 2.0),
            }
            for i in range(n)
        ]

    def draw(self, physics: Any, scene: mujoco.MjvScene) -> None:
        """``scene_callback`` for dm_control's ``physics.render``: append the shapes to ``scene``."""
        import mujoco

        data, c = physics.data, self.camera_id
        cam_pos, cam_mat = data.cam_xpos[c], data.cam_xmat[c].reshape(3, 3)
        distance = max(float(np.linalg.norm(cam_pos - data.subtree_com[0])), 1e-3)
        half_height = np.tan(np.deg2rad(physics.model.cam_fovy[c]) / 2.0)
        t = float(data.time)
        for shape in self.shapes:
            if scene.ngeom >= scene.maxgeom:
                break
            depth = shape["depth"] * distance
            u, v = shape["center"] + shape["amplitude"] * np.sin(shape["frequency"] * t + shape["phase"])
            offset = np.array([u * self.aspect * half_height * depth, v * half_height * depth, -depth])
            orientation = cam_mat @ _rotation(shape["spin_axis"], shape["spin"] * t)
            scene.ngeom += 1  # ``scene.geoms`` only reaches the first ``ngeom`` geoms
            geom = scene.geoms[scene.ngeom - 1]
            mujoco.mjv_initGeom(geom, shape["type"], shape["size"] * half_height * depth,
                                cam_pos + cam_mat @ offset, orientation.ravel(), shape["rgba"])  # fmt: skip
            geom.segid = scene.ngeom - 1  # not background in the segmentation pass


class _VideoBackground:
    """Frames of a video source, resized to the observation size, played one per agent step."""

    def __init__(self, source: Any, size: tuple[int, int]) -> None:
        self.size = size
        self.is_array = isinstance(source, np.ndarray)
        if self.is_array:
            self._check(source, "background_video")
        elif not (hasattr(source, "__len__") and hasattr(source, "__getitem__")):
            raise TypeError(
                "background_video must be a uint8 array (N, H, W, 3) or a dataset whose items are dicts with "
                "an 'image' uint8 array (T, H, W, 3), e.g. sb3_worldmodels.data.VideoFileDataset; "
                f"got {type(source)}"
            )
        if len(source) == 0:
            raise ValueError("background_video is empty: give at least one frame (array) or clip (dataset)")
        self.source = source
        self.clip = np.zeros((1, *size, 3), np.uint8)
        self.index = 0
        self._frames: dict[int, np.ndarray] = {}
        self._rng = np.random.default_rng(0)

    @staticmethod
    def _check(video: Any, what: str) -> np.ndarray:
        video = np.asarray(video)
        if video.dtype != np.uint8 or video.ndim != 4 or video.shape[-1] != 3 or len(video) == 0:
            raise ValueError(
                f"{what} must be a non-empty uint8 array (T, H, W, 3) (channels last, values 0-255); "
                f"got dtype {video.dtype} and shape {video.shape}"
            )
        return video

    def _load(self) -> None:
        if self.is_array:
            self.clip = self.source
        else:
            item = self.source[int(self._rng.integers(len(self.source)))]
            if not isinstance(item, dict) or "image" not in item:
                raise TypeError(f"background_video items must be dicts with an 'image' key; got {type(item)}")
            self.clip = self._check(item["image"], "background_video item['image']")
        self._frames.clear()

    def start(self, rng: np.random.Generator) -> None:
        """Pick a clip (datasets) or a start frame (arrays) for a new episode."""
        self._rng = rng
        self._load()
        self.index = int(rng.integers(len(self.clip))) if self.is_array else 0

    def advance(self) -> None:
        """Move to the next frame; an array loops, a dataset moves on to another random clip."""
        self.index += 1
        if self.index >= len(self.clip):
            self.index = 0
            if not self.is_array:
                self._load()

    def frame(self) -> np.ndarray:
        """The current frame, ``uint8 (H, W, 3)`` at the observation size."""
        if self.index not in self._frames:
            frame = np.ascontiguousarray(self.clip[self.index])
            height, width = self.size
            if frame.shape[:2] != (height, width):
                from PIL import Image

                frame = np.asarray(Image.fromarray(frame).resize((width, height), Image.Resampling.BILINEAR))
            self._frames = {self.index: frame}  # only the current frame is kept
        return self._frames[self.index]


class DistractedDMCEnv(DMCEnv):
    """A :class:`~sb3_worldmodels.envs.dmc.DMCEnv` whose visual factors are redrawn at every reset.

    The factors in ``vary`` (see :data:`FACTORS`) are drawn from a ``numpy`` Generator that
    ``reset(seed=...)`` re-seeds (``reset(options={"visual_seed": k})`` re-seeds only the looks, with
    ``k``); each factor has its own stream, so a factor looks the same for a seed whatever else varies.
    Observations, spaces, rewards and dynamics are those of the wrapped DMC task.
    """

    def __init__(
        self,
        env: DmControlCompatibilityV0,
        obs_type: str = "pixels",
        size: tuple[int, int] = (64, 64),
        action_repeat: int = 2,
        camera_id: int = 0,
        render_mode: str | None = "rgb_array",
        vary: str | Iterable[str] = "all",
        background_video: Any = None,
        seed: int | None = None,
    ) -> None:
        """Wrap ``env`` like :class:`DMCEnv` does, with visual randomisation.

        Args:
            env: shimmy ``DmControlCompatibilityV0`` around a dm_control suite environment.
            obs_type: As for ``DMCEnv``, and so are ``size``, ``action_repeat``, ``camera_id`` and
                ``render_mode``.
            vary: Factors to randomise: ``"all"``, one name or a sequence of names of :data:`FACTORS`.
            background_video: ``None``, a uint8 array ``(N, H, W, 3)`` or a dataset of dicts with an
                ``"image"`` uint8 clip ``(T, H, W, 3)``; its frames replace the background pixels.
            seed: Seed of the visual generator until the first ``reset(seed=...)``.
        """
        super().__init__(env, obs_type, size, action_repeat, camera_id, render_mode)
        self.vary = parse_vary(vary)
        if camera_id < 0 and {"camera", "distractors"} & set(self.vary):
            raise ValueError(
                "vary='camera' and 'distractors' need a model camera, not the free camera (camera_id=-1): "
                "pass camera_id >= 0 or leave them out of vary"
            )
        self._renders = obs_type != "state" or render_mode is not None
        self._model = _ModelRandomizer(env.physics, camera_id)
        distract = "distractors" in self.vary
        self._distractors = _Distractors(camera_id, self.width / self.height) if distract else None
        size = (self.height, self.width)
        self._video = None if background_video is None else _VideoBackground(background_video, size)
        self._visual_rng = _visual_generator(seed)
        if self._distractors is not None:
            env.render_kwargs = {**env.render_kwargs, "scene_callback": self._distractors.draw}

    @classmethod
    def from_dmc(cls, env: DMCEnv, **kwargs: Any) -> DistractedDMCEnv:
        """Re-wrap the task of ``env`` (made by :func:`~sb3_worldmodels.envs.dmc.make_dmc`), same settings.

        Args:
            env: The plain DMC environment; it must not be used afterwards.
            **kwargs: ``vary``, ``background_video``, ``seed`` (see :class:`DistractedDMCEnv`).

        Returns:
            The distracted environment.
        """
        return cls(env.shimmy_env, env.obs_type, (env.height, env.width), env.action_repeat, env.camera_id,
                   env.render_mode, **kwargs)  # fmt: skip

    def _randomize(self) -> None:
        streams = self._visual_rng.integers(0, 2**63, size=len(FACTORS) + 1)  # every factor's, varied or not
        for name, stream in zip(FACTORS, streams):
            if name not in self.vary:
                continue
            rng = np.random.default_rng(stream)
            if name == "distractors":
                assert self._distractors is not None
                self._distractors.sample(rng)
            else:
                getattr(self._model, name)(rng)
        self._model.upload_textures()
        if self._video is not None:
            self._video.start(np.random.default_rng(streams[-1]))

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[Any, dict[str, Any]]:
        """Draw new looks, then start a new episode.

        Args:
            seed: Re-seeds dm_control's task RNG and the visual generator.
            options: ``{"visual_seed": k}`` re-seeds the visual generator with ``k`` instead, so the
                looks change while ``seed`` keeps the initial physics state.

        Returns:
            The first observation and the info dict.
        """
        options = dict(options or {})
        visual_seed = options.pop("visual_seed", None)
        if visual_seed is not None or seed is not None:
            self._visual_rng = _visual_generator(seed if visual_seed is None else visual_seed)
        if self._renders:
            self._randomize()
        return super().reset(seed=seed, options=options or None)

    def step(self, action: np.ndarray) -> tuple[Any, float, bool, bool, dict[str, Any]]:
        """Advance the background video by one frame and step the task (see :meth:`DMCEnv.step`)."""
        if self._video is not None:
            self._video.advance()
        return super().step(action)

    def _render_frame(self) -> np.ndarray:
        fresh = self._frame is None
        frame = super()._render_frame()
        if fresh and self._video is not None:
            physics = self.shimmy_env.physics
            segmentation = physics.render(segmentation=True, **self.shimmy_env.render_kwargs)
            background = (segmentation[..., 0] == -1) & (segmentation[..., 1] == -1)
            frame[background] = self._video.frame()[background]
        return frame


def make_dmcr(
    domain: str,
    task: str,
    vary: str | Iterable[str] = "all",
    background_video: Any = None,
    obs_type: str = "pixels",
    size: int | tuple[int, int] = 64,
    action_repeat: int = 2,
    camera_id: int | None = None,
    seed: int | None = None,
    render_mode: str | None = "rgb_array",
    **task_kwargs: Any,
) -> DistractedDMCEnv:
    """Create a distracted DMC task: :func:`~sb3_worldmodels.envs.dmc.make_dmc` plus visual randomisation.

    Args:
        domain: Suite domain, e.g. ``"cartpole"``, ``"ball_in_cup"``.
        task: Task of that domain, e.g. ``"swingup"``.
        vary: Factors redrawn at every reset: ``"all"`` (default), one name or a sequence of names
            from :data:`FACTORS`; ``()`` renders exactly like plain DMC.
        background_video: ``None``, a uint8 array ``(N, H, W, 3)`` (one video, looped from a random
            frame) or a dataset (anything with ``len`` and indexing, e.g. a torch ``Dataset`` from
            :mod:`sb3_worldmodels.data`) whose items are dicts with an ``"image"`` uint8 clip
            ``(T, H, W, 3)``. Its frames, resized, replace the background pixels, one per agent step.
        obs_type: ``"pixels"``, ``"state"`` or ``"both"`` (as :func:`make_dmc`).
        size: Frame size, ``int`` for square or ``(height, width)``.
        action_repeat: Control steps per agent step; rewards are summed.
        camera_id: Camera for frames; default 2 for quadruped, else 0.
        seed: Seed of dm_control's task RNG and of the visual generator (``reset(seed=...)``
            re-seeds both).
        render_mode: ``"rgb_array"`` (default) or ``None``.
        **task_kwargs: Extra suite task kwargs, e.g. ``time_limit=10``.

    Returns:
        A :class:`DistractedDMCEnv`.

    Raises:
        ValueError: Unknown factor in ``vary``, unknown domain/task, bad ``obs_type`` or a
            ``background_video`` that is not uint8 ``(T, H, W, 3)``.
    """
    vary = parse_vary(vary)  # fail before loading the suite
    env = make_dmc(domain, task, obs_type, size, action_repeat, camera_id, seed, render_mode, **task_kwargs)
    return DistractedDMCEnv.from_dmc(env, vary=vary, background_video=background_video, seed=seed)


def dmcr_env_id(domain: str, task: str) -> str:
    """Gymnasium id of a distracted DMC task: ``("walker", "walk")`` -> ``"sb3wm/dmcr-walker-walk-v0"``."""
    return dmc_env_id(domain, task).replace("sb3wm/dmc-", "sb3wm/dmcr-", 1)


def register() -> None:
    """Register ``sb3wm/dmcr-{domain}-{task}-v0`` for each task of :data:`~sb3_worldmodels.envs.DMC_TASKS`."""
    register_ids(  # no TimeLimit: the env truncates itself at DMC's time limit
        ((dmcr_env_id(domain, task), {"domain": domain, "task": task}) for domain, task in DMC_TASKS),
        "sb3_worldmodels.envs.dmcr:make_dmcr",
    )
