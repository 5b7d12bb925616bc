"""Tar shard → records: the members of each sample, grouped by key, still undecoded.

Three small steps, each a generator over the one before:

1. :func:`iter_tar_members` opens a URL with :func:`streams.reading.remote.open_shard` (http(s)
   with Range retries; local paths, ``file:``, ``pipe:``, cloud CLIs through webdataset's ``gopen``) and emits ``(member name, bytes)`` for every regular file, in
   tar order. Unlike ``tarfile``'s own iteration (and so webdataset's ``tar_file_iterator``), it
   never ends quietly on a damaged archive: a tar cut at a member boundary, inside a header or
   inside a member's data, or a garbled header, raises :class:`ShardReadError` after the members
   read in full.
2. :func:`iter_records` groups members by key into :class:`Record` objects. It checks what
   webdataset's grouping lets pass: a sample's members must be adjacent, a key may appear only
   once per shard, a member only once per sample. Such a record is still emitted, with its
   ``problem`` set, so that a caller that skips bad samples can count it and go on.
3. :func:`streams.reading.decode.decode_record` turns a record into a sample (another module).

When a shard is damaged, which records count as complete? A record is complete when the next
key starts, or when the tar ends cleanly. The record being read when the damage hits is also
complete if all three arrays were read in full and the damage did not hit one of its members
(it hit a header, so no member of it is known to be lost): writers put a sample's members in
sorted order (webdataset's ``TarWriter``, ``python -m pipelines pack``, GNU tar over sorted
files), and ``meta.json`` sorts before ``pointers.npy`` and ``raw_mel.npy``, so nothing the
reader uses can follow the last array. Any other interrupted record is lost: the error names
its key, and counts it as one sample read and dropped.

Members whose file name has no dot (a README), directories and webdataset's ``__key__``-style
entries are not sample members and are passed over; members with unknown suffixes
(``KEY.wav``) stay in the record and are ignored by decoding.
"""

from __future__ import annotations

import dataclasses
import re
import tarfile
from collections.abc import Callable, Iterator

from ..sample import SampleError
from .remote import open_shard

__all__ = [
    "REQUIRED_MEMBERS",
    "SHARD_REASONS",
    "Record",
    "ShardReadError",
    "iter_records",
    "iter_tar_members",
    "split_member_name",
]

REQUIRED_MEMBERS = ("raw_mel.npy", "edit_mel.npy", "pointers.npy")
_DECODED_SUFFIXES = frozenset((*REQUIRED_MEMBERS, "meta.json"))  # the members whose bytes are read
"""The members every sample needs; ``meta.json`` is optional, other suffixes are ignored."""

SHARD_REASONS = ("corrupt_shard", "empty_shard", "missing_shard", "no_usable_samples", "not_a_tar",
                 "truncated_shard", "unreadable_shard")
"""Reasons of :class:`ShardReadError`: what went wrong with a whole shard (or its tail)."""

_MEMBER_NAME = re.compile(r"^((?:.*/|)[^./]+)\.([^/]+)$")
_WEBDATASET_META = re.compile(r"__[^/]*__($|/)")


class ShardReadError(RuntimeError):
    """A shard could not be read to its end: missing, unreadable, not a tar, empty, cut short.

    Attributes:
        reason: one of :data:`SHARD_REASONS`.
        url: the shard.
        key: the sample that was being read when the damage hit and is lost with it (``None``
            when no sample was cut: the damage hit between samples, or the shard never opened).
        member: the member being read when the damage hit (``"KEY.pointers.npy"``), if known.
        complete_records: records of this shard read in full before the damage.
        detail: what went wrong, without the shard and the advice the message adds.

    Every argument but the message has a default, so the error survives pickling and
    DataLoader's re-raise in the main process.
    """

    def __init__(self, message: str, *, reason: str = "unreadable_shard", url: str | None = None,
                 key: str | None = None, member: str | None = None, complete_records: int = 0,
                 detail: str | None = None):
        super().__init__(message)
        self.reason = reason
        self.url = url
        self.key = key
        self.member = member
        self.complete_records = complete_records
        self.detail = detail if detail is not None else message

    @property
    def lost_samples(self) -> int:
        """Samples read in part and dropped with the damage: 1 if ``key`` is set, else 0."""
        return 0 if self.key is None else 1

    def __reduce__(self) -> tuple:
        return _rebuild_shard_error, (str(self), self.reason, self.url, self.key, self.member,
                                      self.complete_records, self.detail)


def _rebuild_shard_error(message: str, reason: str, url: str | None, key: str | None, member: str | None,
                         complete_records: int, detail: str) -> ShardReadError:
    return ShardReadError(message, reason=reason, url=url, key=key, member=member,
                          complete_records=complete_records, detail=detail)


@dataclasses.dataclass
class Record:
    """The members of one sample in a shard: ``{"raw_mel.npy": b"...", ...}``, undecoded.

    ``index`` is the sample's position in its shard (0-based), its address for resuming; every
    record counts, bad ones too. ``problem`` is set when the grouping found the record bad (its
    key repeats, its members are split, a member repeats); decoding raises it. Members decoding
    does not read (anything but the three arrays and ``meta.json``) are listed with ``None``.
    """

    key: str
    index: int
    members: dict[str, bytes | bytearray | None]
    url: str
    problem: SampleError | None = None


def split_member_name(name: str) -> tuple[str, str] | None:
    """``"dir/abc.raw_mel.npy"`` → ``("dir/abc", "raw_mel.npy")``: the key is everything before
    the first dot of the file name; ``None`` for a name without one.

    >>> split_member_name("s001.raw_mel.npy")
    ('s001', 'raw_mel.npy')
    >>> split_member_name("README") is None
    True
    """
    match = _MEMBER_NAME.match(name)
    return (match.group(1), match.group(2)) if match else None


class _TarDamage(Exception):
    """Raised from inside ``tarfile`` where it would otherwise end the archive quietly."""

    def __init__(self, reason: str, detail: str):
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


class _StrictTarInfo(tarfile.TarInfo):
    """``tarfile`` ends an archive quietly on a missing, cut or garbled header after the first
    one; this header parser raises :class:`_TarDamage` there instead (the end-of-archive block
    of zeros still ends it cleanly)."""

    @classmethod
    def fromtarfile(cls, archive: tarfile.TarFile) -> tarfile.TarInfo:
        try:
            return super().fromtarfile(archive)
        except tarfile.EmptyHeaderError:
            if archive.offset == 0:
                raise
            raise _TarDamage("truncated_shard", "the tar ends at a member boundary without its "
                                                "end-of-archive marker") from None
        except tarfile.TruncatedHeaderError:
            if archive.offset == 0:
                raise
            raise _TarDamage("truncated_shard", f"the tar ends inside a member header (at byte {archive.offset})"
                             ) from None
        except tarfile.InvalidHeaderError as err:
            if archive.offset == 0:
                raise
            raise _TarDamage("corrupt_shard", f"the member header at byte {archive.offset} is damaged ({err})"
                             ) from None


_FIX = {
    "missing_shard": "check the path or brace pattern (in a config, relative paths are relative to the config file)",
    "unreadable_shard": "check permissions, the URL and network access, then retry",
    "not_a_tar": "shards must be POSIX tar files (optionally .tar.gz); re-pack it with `python -m pipelines pack`",
    "empty_shard": "re-write it, or remove it from the shard list",
    "truncated_shard": "re-upload or re-pack the shard (an upload cut short is the usual cause)",
    "corrupt_shard": "re-upload or re-pack the shard",
}


def _shard_error(url: str, reason: str, detail: str, *, member: str | None = None, key: str | None = None,
                 complete_records: int = 0) -> ShardReadError:
    return ShardReadError(f"shard {url}: {detail}; {_FIX[reason]}", reason=reason, url=url, member=member, key=key,
                          complete_records=complete_records, detail=detail)


def _command_failure(stream: object) -> str | None:
    """Close ``stream``; for a ``pipe:`` command that failed, say how (webdataset raises on close)."""
    try:
        stream.close()
    except Exception as err:
        return f"{type(err).__name__}: {err}"
    return None


def _open_archive(stream: object, url: str) -> tarfile.TarFile:
    try:
        return tarfile.open(fileobj=stream, mode="r|*", tarinfo=_StrictTarInfo)
    except tarfile.ReadError as err:
        if str(err) == "empty file":
            raise _shard_error(url, "empty_shard", "the file is empty (0 bytes)") from err
        raise _shard_error(url, "not_a_tar", f"it is not a tar file ({err})") from err
    except Exception as err:  # a failing pipe: command, a network error, a bad compressed stream
        raise _shard_error(url, "unreadable_shard", f"cannot read it ({type(err).__name__}: {err})") from err


def _read_member(archive: tarfile.TarFile, info: tarfile.TarInfo) -> bytes | bytearray:
    """The data of member ``info``, read in one call where the archive allows it.

    ``tarfile`` reads a stream in 10 KB blocks joined in Python (about 300 calls for a 3 MB mel).
    For an uncompressed stream at the member's data, this takes what ``tarfile`` has buffered and
    reads the rest straight into a ``bytearray`` (one ``readinto``), then moves ``tarfile``'s
    position past it, as its own read would. The ``bytearray`` is writable, so a ``.npy`` already
    in the wanted dtype needs no copy to become a tensor. Compressed, sparse or otherwise unusual
    members take ``tarfile``'s own path. A member cut short raises ``tarfile.ReadError``
    ("unexpected end of data"), as ``tarfile`` does.
    """
    stream = archive.fileobj
    raw = getattr(stream, "fileobj", None)
    if isinstance(raw, tarfile._StreamProxy) and "read" in vars(raw):  # "r|*": the proxy has handed over
        raw = raw.fileobj
    if (not isinstance(stream, tarfile._Stream) or stream.comptype != "tar" or info.sparse is not None
            or stream.pos != info.offset_data or not hasattr(raw, "readinto")):
        return archive.extractfile(info).read()
    data = bytearray(info.size)
    buffered = stream.buf[:info.size]
    data[:len(buffered)] = buffered
    stream.buf = stream.buf[len(buffered):]
    filled = len(buffered)
    view = memoryview(data)
    while filled < info.size:
        got = raw.readinto(view[filled:])
        if not got:
            break
        filled += got
    view.release()
    stream.pos += filled
    if filled < info.size:
        raise tarfile.ReadError("unexpected end of data")
    return data


def iter_tar_members(url: str, wanted: Callable[[str], bool] | None = None
                     ) -> Iterator[tuple[str, bytes | bytearray | None]]:
    """Yield ``(name, bytes)`` for each regular file of the tar at ``url``, in tar order.

    Members for which ``wanted(name)`` is false come as ``(name, None)``: their data is passed
    over in the stream, never held in memory (audio files next to the mels, say).

    Raises :class:`ShardReadError` (after the members read in full) when the shard does not
    exist (``missing_shard``), cannot be opened or read (``unreadable_shard``), is not a tar
    (``not_a_tar``), is an empty file (``empty_shard``), ends before its end-of-archive marker
    (``truncated_shard``) or has a garbled header (``corrupt_shard``). ``member`` names the
    member whose data was cut, when the damage hit one.
    """
    try:
        stream = open_shard(url)  # http(s): resumes dropped connections (remote.py)
    except FileNotFoundError as err:
        raise _shard_error(url, "missing_shard", "the file does not exist") from err
    except Exception as err:  # permissions, a folder, an unknown scheme...
        raise _shard_error(url, "unreadable_shard", f"cannot open it ({type(err).__name__}: {err})") from err
    try:
        archive = _open_archive(stream, url)
        last: str | None = None
        while True:
            reading = None
            try:
                info = archive.next()
                if info is None:
                    return
                if not info.isreg() or _WEBDATASET_META.match(info.name):
                    continue
                reading = info.name
                data = _read_member(archive, info) if wanted is None or wanted(info.name) else None
            except _TarDamage as err:
                where = f" after member {last}" if last else " before its first member"
                raise _shard_error(url, err.reason, err.detail + where) from None
            except tarfile.ReadError as err:
                if reading is not None:
                    detail = f"member {reading} is cut short ({err})"
                else:
                    detail = f"the tar ends inside the data or padding of member {last} ({err})"
                reason = "truncated_shard" if "unexpected end" in str(err) else "corrupt_shard"
                raise _shard_error(url, reason, detail, member=reading) from err
            except Exception as err:  # I/O errors mid-stream: network, a failing pipe: command, zlib
                where = f" while reading member {reading}" if reading else (f" after member {last}" if last else "")
                raise _shard_error(url, "unreadable_shard", f"read failed{where} ({type(err).__name__}: {err})",
                                   member=reading) from err
            archive.members = []  # stream mode would keep every TarInfo otherwise
            last = info.name
            yield info.name, data
    except ShardReadError as err:
        failure = _command_failure(stream)  # a failed download looks like an empty or cut tar: say why
        if failure is not None:
            raise _shard_error(url, "unreadable_shard", f"reading it failed ({failure}); what arrived: {err.detail}",
                               member=err.member) from err
        raise
    finally:
        try:
            stream.close()
        except Exception:  # a pipe: command stopped early exits with SIGPIPE; what was read stands
            pass


def _finish(record: Record, earlier: dict[str, tuple[int, frozenset[str]]]) -> Record:
    """Set ``record.problem`` if its key was seen before in the shard (split members or a repeat)."""
    if record.key not in earlier or record.problem is not None:
        return record
    first_index, first_members = earlier[record.key]
    shared = sorted(first_members & set(record.members))
    where = f"sample {record.key!r} in shard {record.url}"
    if shared:
        record.problem = SampleError(
            f"{where}, member {shared[0]}: the key appears twice (records {first_index} and {record.index}; both hold "
            f"{', '.join(shared)}); keys must be unique within a shard: rename one of the samples when packing",
            reason="duplicate_key", key=record.key, url=record.url, member=shared[0])
    else:
        member = sorted(record.members)[0]
        record.problem = SampleError(
            f"{where}, member {member}: its members are not adjacent ({', '.join(sorted(first_members))} at "
            f"record {first_index}, {', '.join(sorted(record.members))} at record {record.index}, other samples "
            "between); write each sample's members together (sort the files by key before tar)",
            reason="members_not_adjacent", key=record.key, url=record.url, member=member)
    return record


def _is_decoded_member(name: str) -> bool:
    parts = split_member_name(name)
    return parts is not None and parts[1].lower() in _DECODED_SUFFIXES


def iter_records(url: str) -> Iterator[Record]:
    """Yield the records of the shard at ``url`` in tar order, bad ones included (``problem`` set).

    Raises :class:`ShardReadError` when the shard cannot be read to its clean end (after the
    records complete before the damage; see the module docstring for which those are), and
    ``empty_shard`` when a readable tar holds no sample members at all.
    """
    current: Record | None = None
    earlier: dict[str, tuple[int, frozenset[str]]] = {}  # key -> (record index, member suffixes)
    index = 0
    try:
        for name, data in iter_tar_members(url, wanted=_is_decoded_member):
            parts = split_member_name(name)
            if parts is None:
                continue  # files without an extension (READMEs) are not members
            key, suffix = parts[0], parts[1].lower()
            if current is None or key != current.key:
                if current is not None:
                    yield _finish(current, earlier)
                    earlier.setdefault(current.key, (current.index, frozenset(current.members)))
                    index += 1
                current = Record(key=key, index=index, members={}, url=url)
            if suffix in current.members and current.problem is None:
                current.problem = SampleError(
                    f"sample {key!r} in shard {url}, member {suffix}: the member appears twice; keep one copy",
                    reason="duplicate_member", key=key, url=url, member=suffix)
            current.members[suffix] = data
    except ShardReadError as err:
        damage = _after_damage(err, current, index)
        if current is not None and damage.complete_records > index:
            yield _finish(current, earlier)  # the pending record survived the damage
        raise damage from err
    if current is None:
        raise _shard_error(url, "empty_shard", "the tar holds no sample members (names like KEY.raw_mel.npy)")
    yield _finish(current, earlier)


def _after_damage(err: ShardReadError, current: Record | None, index: int) -> ShardReadError:
    """``err`` told which record the damage cut, if any, and how many records came before it.

    ``current`` is the pending record (index ``index``). It is complete (see the module
    docstring) if the damage hit no member of it and it holds all three arrays; then
    ``complete_records`` is ``index + 1``.
    """
    hit = split_member_name(err.member) if err.member else None
    hit_key = hit[0] if hit else None
    if current is None and hit_key is None:
        return err  # nothing was read: the shard is missing, empty, not a tar...
    if current is None:
        lost = hit_key
        complete = 0
    elif hit_key is not None and hit_key != current.key:
        lost = hit_key  # the next sample's first member was cut: the pending record is complete
        complete = index + 1
    elif hit_key is None and all(m in current.members for m in REQUIRED_MEMBERS):
        lost = None
        complete = index + 1
    else:
        lost = current.key
        complete = index
    if lost is not None:
        context = f"sample {lost!r} was cut and is lost, after {complete} complete sample(s)"
    else:
        context = f"no sample was cut; {complete} complete sample(s) before the damage"
    return _shard_error(err.url, err.reason, f"{err.detail} ({context})", member=err.member, key=lost,
                        complete_records=complete)
