"""The MLflow model registry as relctl sees it: versions, aliases, tags, files.

Only the MLflow client API is used (mlflow-skinny is enough). All version numbers
are strings. Every failure surfaces as RegistryError with a message naming the
model, the version or the server.
"""
from __future__ import annotations

import logging
import re
import shutil
import tempfile
from datetime import datetime, timezone
from pathlib import Path

from mlflow import MlflowClient
from mlflow.entities.model_registry import ModelVersion

from controller.registry import checkpoint_files, integrity
from controller.registry.client_errors import (
    configure_fast_fail, is_already_exists, is_not_found, translated)
from controller.registry.conventions import EXPERIMENT_NAME
from controller.registry.events import poll_events
from controller.registry.types import RegistryError, RegistryEvent, VersionInfo

log = logging.getLogger(__name__)
_PAGE = 1000


class MlflowRegistry:
    def __init__(self, tracking_uri: str):
        if not re.match(r"^(https?|databricks|sqlite|file)", tracking_uri or ""):
            raise RegistryError(f"not an MLflow tracking URI: {tracking_uri!r}")
        configure_fast_fail()
        self.uri = tracking_uri
        self._client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)

    # ---- versions -------------------------------------------------------------

    def register_checkpoint(self, name: str, checkpoint_dir: Path, *,
                            tags: dict[str, str] | None = None, description: str = "") -> str:
        """Uploads a checkpoint folder as a flavor-less LoggedModel and registers it.

        Tags are set in the same call that creates the version, so pollers and
        webhooks never see the version without them (lineage tags included), and so
        are the SHA-256 manifest's digest and signature (see integrity.py).
        """
        _check_name(name)
        folder = checkpoint_files.check_checkpoint_dir(checkpoint_dir)
        clean_tags = _check_tags(tags or {})
        with translated(self.uri, f"registering {folder} as '{name}'"):
            model_id, manifest_tags = self._upload(name, folder)
            clean_tags |= manifest_tags
            self._ensure_registered_model(name)
            mv = self._client.create_model_version(
                name, source=f"models:/{model_id}", tags=clean_tags,
                description=description or None, model_id=model_id)
        log.info("registered checkpoint", extra={"model": name, "version": mv.version, "model_id": model_id,
                                                 "manifest_sha256": manifest_tags[integrity.TAG_DIGEST]})
        return str(mv.version)

    def model_exists(self, name: str) -> bool:
        _check_name(name)
        try:
            with translated(self.uri, f"looking up model '{name}'"):
                self._client.get_registered_model(name)
        except RegistryError as err:
            if is_not_found(err.__cause__):
                return False
            raise
        return True

    def get_version(self, name: str, version: str) -> VersionInfo:
        version = _check_version(version)
        aliases = self._aliases(name)  # also proves the model exists
        mv = self._call_on_version(name, version, "reading",
                                   lambda: self._client.get_model_version(name, version))
        return _info(mv, aliases)

    def list_versions(self, name: str) -> list[VersionInfo]:
        """All versions, oldest first."""
        return self._search(name, f"name='{name}'")

    def find_versions_by_tag(self, name: str, key: str, value: str) -> list[VersionInfo]:
        if not key or "`" in key or "'" in str(value):
            raise RegistryError(f"cannot search on tag {key!r}={value!r}: "
                                "empty key, backquote or single quote")
        return self._search(name, f"name='{name}' AND tag.`{key}`='{value}'")

    def download(self, name: str, version: str, dest_dir: Path) -> Path:
        """Local folder with the checkpoint files (config.json at its top).

        Cached: a completed download under dest_dir is reused without a server call.
        A version registered with a manifest is verified before it enters the cache:
        a changed, missing or extra file raises IntegrityError naming it.
        """
        version = _check_version(version)
        _check_name(name)
        target = checkpoint_files.cache_path(Path(dest_dir), name, version)
        if checkpoint_files.is_complete(target):
            return target
        info = self.get_version(name, version)  # clear error for an unknown model/version
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{target.name}-verify-", dir=target.parent))
        try:
            checked = self._download_checked(info, staging / target.name)
            checkpoint_files._publish(staging / target.name, target)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        log.info("downloaded checkpoint", extra={"model": name, "version": version,
                                                 "path": str(target), "integrity": checked})
        return target

    def verify(self, name: str, version: str) -> dict:
        """`relctl verify`: download afresh (never the cache) and check against the manifest."""
        info = self.get_version(name, _check_version(version))
        if integrity.TAG_DIGEST not in info.tags:
            raise integrity.IntegrityError(f"'{name}' version {info.version} has no {integrity.TAG_DIGEST} "
                                           "tag: it was registered without a manifest")
        with tempfile.TemporaryDirectory(prefix="relctl-verify-") as tmp:
            checked = self._download_checked(info, Path(tmp) / "checkpoint")
        return {"model": name, "version": info.version, "ok": True, **checked}

    def _download_checked(self, info: VersionInfo, folder: Path) -> dict | str:
        with translated(self.uri, f"downloading '{info.name}' version {info.version}"):
            uri = self._client.get_model_version_download_uri(info.name, info.version)
            checkpoint_files.download_into(self.uri, uri, folder)
        if integrity.TAG_DIGEST not in info.tags:
            return "no manifest (registered before relctl wrote manifests)"
        try:
            return integrity.verify_download(folder, info.tags)
        except integrity.IntegrityError as err:
            where = str(err).replace(str(folder), "the download")
            raise integrity.IntegrityError(f"'{info.name}' version {info.version}: {where}", changed=err.changed,
                                           missing=err.missing, extra=err.extra) from None

    def poll(self, name: str, seen: set[str]) -> list[RegistryEvent]:
        """New versions not in `seen`, alias `candidate`, tag `relctl.action`.

        See events.poll_events for which events repeat; derived builds (versions
        carrying relctl.parent_version, e.g. relctl's own AWQ builds) never count as
        new versions. Raises RegistryError for an unknown model.
        """
        return poll_events(name, self.list_versions(name), seen)

    # ---- aliases --------------------------------------------------------------

    def get_alias(self, name: str, alias: str) -> str | None:
        return self._aliases(name).get(_check_alias(alias))

    def set_alias(self, name: str, alias: str, version: str) -> None:
        alias, version = _check_alias(alias), _check_version(version)
        self._aliases(name)
        self._call_on_version(name, version, f"setting alias '{alias}' on",
                              lambda: self._client.set_registered_model_alias(
                                  name, alias, version))
        log.info("alias set", extra={"model": name, "alias": alias, "version": version})

    def delete_alias(self, name: str, alias: str) -> None:
        """Idempotent: deleting an alias that is not set is not an error."""
        if self.get_alias(name, alias) is None:
            return
        with translated(self.uri, f"deleting alias '{alias}' of '{name}'"):
            self._client.delete_registered_model_alias(name, alias)
        log.info("alias deleted", extra={"model": name, "alias": alias})

    # ---- tags -----------------------------------------------------------------

    def set_tags(self, name: str, version: str, tags: dict[str, str]) -> None:
        version, clean = _check_version(version), _check_tags(tags)
        self._aliases(name)
        for key, value in clean.items():
            self._call_on_version(name, version, f"setting tag '{key}' on",
                                  lambda k=key, v=value: self._client.set_model_version_tag(
                                      name, version, k, v))

    def delete_tag(self, name: str, version: str, key: str) -> None:
        """Idempotent: deleting a tag that is not set is not an error."""
        info = self.get_version(name, version)
        if key not in info.tags:
            return
        self._call_on_version(name, info.version, f"deleting tag '{key}' on",
                              lambda: self._client.delete_model_version_tag(
                                  name, info.version, key))

    # ---- internals ------------------------------------------------------------

    def _aliases(self, name: str) -> dict[str, str]:
        _check_name(name)
        try:
            with translated(self.uri, f"reading model '{name}'"):
                model = self._client.get_registered_model(name)
        except RegistryError as err:
            if is_not_found(err.__cause__):
                raise RegistryError(f"unknown model '{name}'") from None
            raise
        return {alias: str(version) for alias, version in (model.aliases or {}).items()}

    def _call_on_version(self, name: str, version: str, what: str, call):
        try:
            with translated(self.uri, f"{what} '{name}' version {version}"):
                return call()
        except RegistryError as err:
            if is_not_found(err.__cause__):
                raise RegistryError(f"model '{name}' has no version {version}") from None
            raise

    def _search(self, name: str, filter_string: str) -> list[VersionInfo]:
        aliases = self._aliases(name)
        found, token = [], None
        with translated(self.uri, f"listing versions of '{name}'"):
            while True:
                page = self._client.search_model_versions(
                    filter_string, max_results=_PAGE, page_token=token)
                found.extend(page)
                token = page.token
                if not token:
                    break
        infos = [_info(mv, aliases) for mv in found if mv.status in (None, "READY")]
        return sorted(infos, key=lambda i: int(i.version))

    def _upload(self, name: str, folder: Path) -> tuple[str, dict[str, str]]:
        """The folder, then its manifest (after, so it replaces any stale copy in the folder)."""
        experiment_id = self._experiment_id()
        model = self._client.create_logged_model(experiment_id, name=_logged_model_name(name))
        try:
            with tempfile.TemporaryDirectory(prefix="relctl-manifest-") as tmp:
                tags = integrity.write_manifest(folder, Path(tmp))
                self._client.log_model_artifacts(model.model_id, str(folder))
                self._client.log_model_artifacts(model.model_id, tmp)
        except Exception:
            self._client.finalize_logged_model(model.model_id, "FAILED")
            raise
        self._client.finalize_logged_model(model.model_id, "READY")
        return model.model_id, tags

    def _experiment_id(self) -> str:
        experiment = self._client.get_experiment_by_name(EXPERIMENT_NAME)
        if experiment is not None:
            return experiment.experiment_id
        try:
            return self._client.create_experiment(EXPERIMENT_NAME)
        except Exception as exc:  # another process created it in between
            if not is_already_exists(exc):
                raise
            return self._client.get_experiment_by_name(EXPERIMENT_NAME).experiment_id

    def _ensure_registered_model(self, name: str) -> None:
        try:
            self._client.create_registered_model(name)
        except Exception as exc:
            if not is_already_exists(exc):
                raise


def _info(mv: ModelVersion, aliases: dict[str, str]) -> VersionInfo:
    version = str(mv.version)
    created = (datetime.fromtimestamp(mv.creation_timestamp / 1000, tz=timezone.utc)
               if mv.creation_timestamp else None)
    return VersionInfo(
        name=mv.name, version=version, source=mv.source or "", tags=dict(mv.tags or {}),
        aliases=tuple(sorted(a for a, v in aliases.items() if v == version)),
        created_at=created)


def _check_name(name: str) -> None:
    if not isinstance(name, str) or not name.strip() or name != name.strip():
        raise RegistryError(f"model name must be a non-empty string without outer spaces, "
                            f"got {name!r}")
    if "'" in name or "`" in name:
        raise RegistryError(f"model name must not contain quotes, got {name!r}")


def _check_version(version: str) -> str:
    text = str(version).strip()
    if not text.isdigit() or int(text) < 1:
        raise RegistryError(f"version must be a positive integer, got {version!r}")
    return str(int(text))


def _check_alias(alias: str) -> str:
    if not isinstance(alias, str) or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_-]*", alias):
        raise RegistryError(f"alias must be letters, digits, '_' or '-', got {alias!r}")
    if re.fullmatch(r"[vV]\d+|latest", alias):
        raise RegistryError(f"alias {alias!r} is reserved by MLflow")
    return alias


def _check_tags(tags: dict[str, str]) -> dict[str, str]:
    if not isinstance(tags, dict):
        raise RegistryError(f"tags must be a dict of strings, got {type(tags).__name__}")
    clean = {}
    for key, value in tags.items():
        if not isinstance(key, str) or not key.strip():
            raise RegistryError(f"tag keys must be non-empty strings, got {key!r}")
        clean[key] = str(value)
    return clean


def _logged_model_name(name: str) -> str:
    # LoggedModel names allow fewer characters than registered-model names.
    return re.sub(r"[^A-Za-z0-9_.-]", "-", name)[:200] or "checkpoint"


def build(settings, sessions) -> MlflowRegistry:
    """Backend factory (controller.backends): the MLflow model registry."""
    return MlflowRegistry(settings.mlflow_uri)
