"""Projects: a directory on disk, the VMs in it, the ports they hold and the notification stream that follows them."""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gns3core.errors import BadRequest, Conflict, Forbidden, NotFound
from gns3core.files import atomic_write, md5_of_file
from gns3core.host_paths import inside
from gns3core.images import images_root
from gns3core.notifications import NotificationHub
from gns3core.recovery import recover, remove_temporary_projects

if TYPE_CHECKING:
    from gns3core.emulator.vm import BaseVM
    from gns3core.server import Server

log = logging.getLogger(__name__)

TEMPORARY_MARKER = ".gns3_temporary"


def check_uuid(value: str, what: str) -> None:
    """400 for an id that is not a UUID in any of the forms Python accepts (as the reference did)."""
    try:
        uuid.UUID(value)
    except (ValueError, TypeError, AttributeError) as exc:
        raise BadRequest(f"{what} ID {value} is not a valid UUID") from exc


class Project:
    def __init__(self, server: Server, project_id: str, name: str | None, path: Path, location: Path,
                 temporary: bool) -> None:
        self.server = server
        self.id = project_id
        self.name = name
        self.path = path
        self.location = location
        self.temporary = temporary
        self.notifications = NotificationHub()
        self.vms: set[BaseVM] = set()
        self.deleted_vms: list[BaseVM] = []

    def as_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "project_id": self.id,
            "location": str(self.location),
            "path": str(self.path),
            "temporary": self.temporary,
        }

    # -- disk ------------------------------------------------------------------------------------------------------

    def create_directories(self) -> None:
        """Create the project directory and its marker; on failure a directory created here is removed again."""
        created = not self.path.exists()
        try:
            self.path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise Conflict(f"Could not create project directory: {exc}") from exc
        try:
            self.write_marker()
        except Exception:
            if created:
                shutil.rmtree(self.path, ignore_errors=True)
            raise

    def set_temporary(self, temporary: bool) -> None:
        """Change the flag and its marker together: if the disk refuses, the project stays as it was."""
        previous = self.temporary
        self.temporary = temporary
        try:
            self.write_marker()
        except Exception:
            self.temporary = previous
            raise

    def write_marker(self) -> None:
        marker = self.path / TEMPORARY_MARKER
        if self.temporary:
            atomic_write(marker, "1")
        else:
            try:
                marker.unlink()
            except FileNotFoundError:
                pass
            except OSError as exc:
                raise Conflict(f"Could not remove {marker}: {exc}") from exc

    @property
    def files_dir(self) -> Path:
        return self.path / "project-files"

    def module_dir(self, module: str) -> Path:
        path = self.files_dir / module.lower()
        path.mkdir(parents=True, exist_ok=True)
        return path

    @property
    def captures_dir(self) -> Path:
        path = self.files_dir / "captures"
        path.mkdir(parents=True, exist_ok=True)
        return path

    def list_files(self) -> list[dict[str, str]]:
        """Every regular file with its md5 (symlinks are not followed out of the project)."""
        result = []
        root = self.path
        for dirpath, _dirnames, filenames in os.walk(root):
            for filename in filenames:
                if filename.endswith(".ghost"):
                    continue
                full = Path(dirpath) / filename
                if full.is_symlink() or not full.is_file():
                    continue
                try:
                    digest = md5_of_file(full)
                except OSError:
                    continue
                result.append({"path": os.path.relpath(full, root), "md5sum": digest})
        return result

    # -- VMs and events --------------------------------------------------------------------------------------------

    def add_vm(self, vm: BaseVM) -> None:
        self.vms.add(vm)

    def remove_vm(self, vm: BaseVM, deleted: bool = False) -> None:
        self.vms.discard(vm)
        if deleted:
            self.deleted_vms.append(vm)

    def emit(self, action: str, event: Any) -> None:
        self.notifications.emit(action, event)

    def warn(self, message: str) -> None:
        self.emit("log.warning", {"message": message})

    # -- lifecycle -------------------------------------------------------------------------------------------------

    async def close_vms(self) -> None:
        managers = list(self.server.emulators.values())
        for manager in managers:
            await _logged(manager.project_closing(self), "closing hook")
        await asyncio.gather(*(m.close_project_vms(self) for m in managers), return_exceptions=True)
        for manager in managers:
            await _logged(manager.project_closed(self), "closed hook")
        self.vms.clear()

    async def commit(self) -> None:
        """Remove the directories of VMs deleted since the last commit, then let emulators save configs."""
        live = {vm.id for vm in self.vms}
        deleted, self.deleted_vms = self.deleted_vms, []
        for vm in deleted:
            if vm.id in live:  # deleted, then created again with the same id (a client's undo): keep its files
                continue
            await asyncio.to_thread(vm.delete_files)
        for manager in self.server.emulators.values():
            await _logged(manager.project_committed(self), "commit hook")


async def _logged(awaitable, what: str) -> None:
    try:
        await awaitable
    except Exception:
        log.exception("Project %s failed", what)


class ProjectManager:
    """The open projects of the server."""

    def __init__(self, server: Server) -> None:
        self.server = server
        self.projects: dict[str, Project] = {}

    @property
    def location(self) -> Path:
        section = self.server.config.server
        raw = section.get("project_directory") or section.get("projects_path") or "~/GNS3/projects"
        return Path(os.path.expanduser(raw)).absolute()

    def get(self, project_id: str) -> Project:
        check_uuid(project_id, "Project")
        project = self.projects.get(project_id)
        if project is None:
            raise NotFound(f"Project ID {project_id} doesn't exist")
        return project

    def _check_custom_path(self, path: str) -> Path:
        """A remote server keeps client-chosen project directories inside its projects directory."""
        candidate = Path(os.path.expanduser(path))
        if self.server.local:
            return candidate.absolute()
        location = self.location.resolve()
        resolved = (location / candidate).resolve() if not candidate.is_absolute() else candidate.resolve()
        if resolved == location or location not in resolved.parents:
            raise Forbidden(
                f"The project path {path} is outside the projects directory {location}; "
                "only a local server (--local) may put projects elsewhere"
            )
        return resolved

    def _check_overlap(self, path: Path, moving: Project | None = None) -> None:
        """409 for a directory that is, lies inside or contains another open project's directory, or contains the
        projects or images directory: deleting one project must never remove another's files."""
        for other in self.projects.values():
            if other is moving:
                continue
            if inside(path, other.path):
                raise Conflict(f"The directory {path} is inside the directory of the open project {other.id} "
                               f"({other.path}): choose another one")
            if inside(other.path, path):
                raise Conflict(f"The directory {path} contains the directory of the open project {other.id} "
                               f"({other.path}): choose another one")
        for root, what in ((self.location, "projects"), (images_root(self.server), "images")):
            if inside(root, path):
                raise Conflict(f"The directory {path} contains the {what} directory {root}: choose another one")

    async def create(self, body: dict[str, Any]) -> Project:
        project_id = body.get("project_id") or str(uuid.uuid4())
        existing = self.projects.get(project_id)
        if existing is not None:
            return existing
        if len(self.projects) >= self.server.max_projects:
            raise Conflict(f"Too many open projects ({len(self.projects)}, [Server] max_projects): close one first")
        location = self.location
        path = self._check_custom_path(body["path"]) if body.get("path") else location / project_id
        self._check_overlap(path)
        project = Project(self.server, project_id, body.get("name"), path, location, bool(body.get("temporary")))
        project.create_directories()
        self.projects[project_id] = project
        return project

    async def update(self, project: Project, body: dict[str, Any]) -> None:
        """Name, then path, then temporary (the reference's order); a refused path changes nothing at all."""
        new_path = body.get("path")
        moving = new_path is not None and Path(os.path.expanduser(new_path)).absolute() != project.path
        if moving and not self.server.local:
            raise Forbidden("You are not allowed to modify the project directory location")
        if moving:
            self._check_overlap(Path(os.path.expanduser(new_path)).absolute(), project)
        if "name" in body:
            project.name = body["name"]
        if moving:
            old_path, was_temporary = project.path, project.temporary
            project.path = Path(os.path.expanduser(new_path)).absolute()
            try:
                project.create_directories()
            except Exception:
                project.path = old_path
                raise
            for manager in self.server.emulators.values():
                moved = getattr(manager, "project_moved", None)
                if moved is not None:
                    await _logged(moved(project), "move hook")
            if was_temporary and old_path != project.path:
                await asyncio.to_thread(shutil.rmtree, old_path, True)
        if "temporary" in body:
            project.set_temporary(body["temporary"])

    async def close(self, project: Project, force: bool = False) -> None:
        """Stop everything of the project; its directory goes only when it was temporary."""
        if not force and len(project.notifications.listeners) > 1:
            log.info("Project %s not closed: %d clients still listen to it", project.id,
                     len(project.notifications.listeners))
            return
        await project.close_vms()
        if project.temporary:
            await asyncio.to_thread(shutil.rmtree, project.path, True)
        self.server.ports.release_owner(project.id)
        self.projects.pop(project.id, None)
        project.notifications.close()

    async def delete(self, project: Project) -> None:
        await project.close_vms()
        self.server.ports.release_owner(project.id)
        self.projects.pop(project.id, None)
        project.notifications.close()
        try:
            await asyncio.to_thread(shutil.rmtree, project.path)
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise Conflict(f"Could not delete the project directory: {exc}") from exc

    async def close_all(self) -> None:
        for project in list(self.projects.values()):
            try:
                await self.close(project, force=True)
            except Exception:
                log.exception("Could not close project %s", project.id)

    def recover(self) -> None:
        """Crash recovery at start (see gns3core.recovery): leftover emulators, temporary projects, import staging
        directories and partial files."""
        from gns3core.project_import import remove_leftover_staging

        location = self.location
        if not location.is_dir():
            return  # nothing of an earlier run can be inside a directory that does not exist
        report = recover(location, images_root(self.server))
        remove_leftover_staging(location)
        if report.processes or report.partial_files or report.temporary_projects:
            log.warning("Recovered from an earlier run: %d processes ended, %d temporary projects and %d half-written "
                        "files removed", len(report.processes), len(report.temporary_projects),
                        len(report.partial_files))

    def purge_temporary(self) -> None:
        """Temporary projects and import staging directories left behind by a previous run are removed."""
        from gns3core.project_import import remove_leftover_staging

        if self.location.is_dir():
            remove_leftover_staging(self.location)
        remove_temporary_projects(self.location)
