"""The legacy upload API at ``/legacy/``, as twine and ``uv publish`` speak it.

Everything is checked before anything is written, and each refusal is a 4xx
whose status line carries a one-line reason (twine prints it). The file is
streamed to a temporary file while its digests are computed, and moved into
the store only when the transaction commits: a refused or failed upload
leaves no row and no file. Credentials are HTTP basic auth only (a username
and password, or ``__token__`` and a token), never a browser session, which
is why this one view needs no CSRF token.
"""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from packaging.utils import InvalidSdistFilename, InvalidWheelFilename, parse_sdist_filename, parse_wheel_filename
from packaging.version import InvalidVersion, Version
from pyramid.authorization import Everyone
from pyramid.request import Request
from pyramid.response import Response
from pyramid.security import NO_PERMISSION_REQUIRED
from pyramid.view import view_config
from pyramid_retry import is_last_attempt, mark_error_retryable
from sqlalchemy.exc import IntegrityError

from myapp.accounts.policy import MEMBERS, READERS, basic_credentials
from myapp.packaging import publish
from myapp.packaging.context import UploadContext
from myapp.packaging.names import is_valid_filename, is_valid_name, normalize
from myapp.packaging.storage import FileStore, StoreUnavailable
from myapp.packaging.validation import InvalidUpload, ValidMetadata, read_upload
from myapp.security import Permission
from myapp.web.views import DISK_FULL, is_disk_full

log = logging.getLogger(__name__)

DEFAULT_MAX_BYTES = 100 * 1024 * 1024
CHUNK = 1024 * 1024
# PEP 527 and 625: wheels, and sdists as .tar.gz named <normalized_name>-<version>.tar.gz.
FILETYPES = {".whl": "bdist_wheel", ".tar.gz": "sdist"}
_UNPRINTABLE = re.compile(r"[^\x20-\x7e]")


class Refused(Exception):
    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


def _answer(status: int, message: str) -> Response:
    """``400 <reason>``: the status line is what twine shows, so it says why."""
    reason = _UNPRINTABLE.sub("?", message)[:200]
    response = Response(f"{reason}\n", content_type="text/plain")
    response.status = f"{status} {reason}"
    return response


@dataclass
class Received:
    path: Path
    size: int
    sha256: str
    md5: str
    blake2_256: str


def _receive(store: FileStore, field: Any, max_bytes: int) -> Received:
    """Copy the upload to a temporary file in the store, hashing it as it goes."""
    sha256, md5, blake2 = hashlib.sha256(), hashlib.md5(usedforsecurity=False), hashlib.blake2b(digest_size=32)
    size = 0
    out = store.incoming()
    path = Path(out.name)
    try:
        with out:  # closing flushes, and may be what finds the disk full
            field.file.seek(0)  # a retried request (pyramid_retry) reads the parsed form again
            while chunk := field.file.read(CHUNK):
                size += len(chunk)
                if size > max_bytes:
                    raise Refused(f"File too large: the limit is {max_bytes} bytes.", 413)
                for digest in (sha256, md5, blake2):
                    digest.update(chunk)
                out.write(chunk)
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return Received(path, size, sha256.hexdigest(), md5.hexdigest(), blake2.hexdigest())


def _check_names(form: Any) -> tuple[str, Version, str, str]:
    """(project name, version, filename, filetype), consistent with each other."""
    if form.get(":action") != "file_upload":
        raise Refused("Unknown :action; only file_upload is supported.")
    if form.get("protocol_version", "1") != "1":
        raise Refused("Unknown protocol_version.")
    name, raw_version = form.get("name", "").strip(), form.get("version", "").strip()
    if not is_valid_name(name):
        raise Refused("Invalid or missing project name.")
    try:
        version = Version(raw_version)
    except InvalidVersion:
        raise Refused(f"Invalid version {raw_version[:50]!r}: see PEP 440.") from None
    content = form.get("content")
    filename = getattr(content, "filename", None)
    if not isinstance(filename, str) or not hasattr(content, "file"):
        raise Refused("Upload a file in the content field.")
    if not is_valid_filename(filename):  # also: no path separators, no "..", no control characters
        raise Refused("Invalid filename.")
    ending = next((e for e in FILETYPES if filename.endswith(e)), None)
    if ending is None:
        raise Refused("Invalid file extension: upload a .whl or a .tar.gz.")
    try:
        parsed = parse_wheel_filename(filename)[:2] if ending == ".whl" else parse_sdist_filename(filename)
    except (InvalidWheelFilename, InvalidSdistFilename) as exc:
        raise Refused(f"Invalid filename: {exc}.") from None
    if parsed[0] != normalize(name) or parsed[1] != version:
        raise Refused(f"The filename does not match the project {name!r} and version {raw_version!r}.")
    pep625 = normalize(name).replace("-", "_") + "-"
    if ending == ".tar.gz" and not filename.startswith(pep625):
        raise Refused(f"Invalid sdist filename: PEP 625 wants {pep625}{raw_version}.tar.gz.")
    filetype = FILETYPES[ending]
    if form.get("filetype") and form.get("filetype") != filetype:
        raise Refused(f"filetype {form.get('filetype')!r} does not match a {ending} file.")
    return name, version, filename, filetype


def _check_digests(form: Any, received: Received) -> None:
    given = {
        "sha256_digest": received.sha256,
        "md5_digest": received.md5,
        "blake2_256_digest": received.blake2_256,
    }
    present = {key: form.get(key, "").strip().lower() for key in given if form.get(key)}
    if not present:
        raise Refused("Give at least one digest of the file (sha256_digest).")
    for key, value in present.items():
        if value != given[key]:
            raise Refused(f"The {key} does not match the file's content.")


@view_config(route_name="legacy", require_methods=["POST"], require_csrf=False, permission=NO_PERMISSION_REQUIRED)
def upload(request: Request) -> Response:
    if basic_credentials(request) is None or request.identity is None:
        response = _answer(
            401, "Invalid or missing credentials: use a username and password, or __token__ and a token."
        )
        response.headers["WWW-Authenticate"] = 'Basic realm="myapp", charset="UTF-8"'
        return response
    store: FileStore = request.registry["file_store"]
    settings = request.registry.settings
    received: Received | None = None
    try:
        form = request.POST
        name, version, filename, filetype = _check_names(form)
        db = request.dbsession
        spelled = form.get("version", "").strip()
        account = request.identity.account
        target = publish.upload_target(db, name, str(version), spelled=spelled, user_id=account.id, filename=filename)
        _check_may_upload(request, target)
        received = _receive(store, form["content"], int(settings.get("myapp.max_upload_bytes", DEFAULT_MAX_BYTES)))
        _check_digests(form, received)
        if target.filename_sha256 is None and target.filename_deleted:
            raise Refused("File already exists: a file of that name was deleted, and names are not reused.")
        if target.filename_sha256 is not None:
            if target.filename_sha256 == received.sha256:
                received.path.unlink(missing_ok=True)
                return _answer(200, "OK: this file was uploaded before; nothing changed.")
            raise Refused("File already exists: a file of that name was uploaded with other content.")
        valid = read_upload(received.path, filetype, name, version, form, settings)
        new_file = _stored_file(request, filename, filetype, received, valid)
        metadata = _project_metadata(valid)
        try:
            publish.add_file(db, account, target, valid.name, str(version), new_file, metadata)
        except IntegrityError as exc:
            _lost_race(request, exc)
    except (Refused, InvalidUpload) as refused:
        if received is not None:
            received.path.unlink(missing_ok=True)
        return _answer(getattr(refused, "status", 400), str(refused))
    except BaseException as exc:
        if received is not None:
            received.path.unlink(missing_ok=True)
        if is_disk_full(exc):  # the server's fault, not the file's: 507, and nothing was written
            log.error("upload refused: the files folder is full (%s)", exc)
            return _answer(507, DISK_FULL)
        if isinstance(exc, StoreUnavailable):  # the object store did not answer: nothing was written
            log.error("upload refused: the file store is unavailable (%s)", exc)
            response = _answer(503, "The file store is unavailable; try again in a moment.")
            response.headers["Retry-After"] = "30"
            return response
        raise
    return _answer(200, "OK")


def _is_unique_violation(exc: IntegrityError) -> bool:
    orig = exc.orig
    sqlite_names = ("SQLITE_CONSTRAINT_UNIQUE", "SQLITE_CONSTRAINT_PRIMARYKEY")
    return getattr(orig, "sqlstate", None) == "23505" or getattr(orig, "sqlite_errorname", None) in sqlite_names


def _lost_race(request: Request, exc: IntegrityError) -> None:
    """Another upload of this file (or of this new project) committed first.
    Running the request again (pyramid_retry) finds what it wrote: "File
    already exists", or the project to add to. Only if that too races: a 400.
    Any other integrity error is not a race: it goes on up."""
    if not _is_unique_violation(exc):
        raise exc
    if is_last_attempt(request):
        raise Refused("File already exists, or another upload changed this project at the same time: try again.")
    mark_error_retryable(exc)
    raise exc


def _check_may_upload(request: Request, target: publish.UploadTarget) -> None:
    identity = request.identity
    if request.registry[READERS] != Everyone and MEMBERS not in identity.principals:  # a private index
        raise Refused("Only members may publish here: verify your email address first.", 403)
    project = target.project
    if project is None:
        if identity.token is not None and identity.token.package_id is not None:
            raise Refused("This API token is limited to another project.", 403)
        return
    if not request.has_permission(Permission.UPLOAD, UploadContext(request, project, target.role)):
        raise Refused(f"You are not an owner or maintainer of {project.display_name}.", 403)


def _stored_file(
    request: Request, filename: str, filetype: str, received: Received, valid: ValidMetadata
) -> publish.NewFile:
    """Join the file (and a wheel's core metadata) to the transaction, to be
    placed in the store when it commits, and describe its row."""
    store: FileStore = request.registry["file_store"]
    relative = store.relative_path(received.sha256, filename)
    moves = [(received.path, relative)]
    metadata_sha256 = None
    metadata = valid.raw if filetype == "bdist_wheel" else None  # PEP 658 serves a wheel's
    if metadata is not None:
        moves.append((store.write_incoming(metadata), relative + ".metadata"))
        metadata_sha256 = hashlib.sha256(metadata).hexdigest()
    # Joined before anything is written: from here the transaction places or removes both files.
    store.place_on_commit(request.tm, moves)
    form = request.POST
    return publish.NewFile(
        filename=filename,
        packagetype=filetype,
        python_version=form.get("pyversion") or ("source" if filetype == "sdist" else None),
        requires_python=valid.fields["requires_python"],
        size=received.size,
        sha256=received.sha256,
        storage_path=relative,
        metadata_sha256=metadata_sha256,
    )


def _project_metadata(valid: ValidMetadata) -> publish.ProjectMetadata:
    """What the file says about its project (the form's copy was checked against it)."""
    return publish.ProjectMetadata(
        fields=valid.fields,
        project_urls=valid.project_urls,
        classifiers=valid.classifiers,
        release=valid.release_fields,
    )
