"""Tar shard → records: the members of each sample, grouped by key, still undecoded.

Three small steps, each a generator over the one before:

1. :func:`iter_tar_members` opens a URL with :func:`streams.reading.remote.open_shard`
   (http(s) with Range retries; local paths, ``file:``, ``pipe:``, cloud CLIs through
   webdataset's ``gopen``) and emits ``(member name, bytes)`` for every file, in tar
   order (a member it does not read comes with a :class:`BadMember` saying why). Unlike
   ``tarfile``'s own iteration (and so webdataset's ``tar_file_iterator``), it never ends
   quietly on a damaged archive: a tar cut at a member boundary, inside a header or inside a
   member's data, or a garbled header, raises :class:`ShardReadError` after the members
   read in full.
2. :func:`iter_records` groups members by key into :class:`Record` objects. It checks what
   webdataset's grouping lets pass: a sample's members must be adjacent, a key may appear only
   once per shard, a member only once per sample (a whole sample written twice in a row keeps
   its first copy; the second is the repeated key). Such a record is still emitted, with its
   ``problem`` set, so that a caller that skips bad samples can count it and go on.
3. :func:`streams.reading.decode.decode_record` turns a record into a sample (another module).

When a shard is damaged, which records count as complete? A record is complete when the next
key starts, or when the tar ends cleanly. The record being read when the damage hits is also
complete if all three arrays were read in full and the damage did not hit one of its members
(it hit a header, so no member of it is known to be lost): writers put a sample's members in
sorted order (webdataset's ``TarWriter``, ``python -m pipelines pack``, GNU tar over sorted
files), and ``meta.json`` sorts before ``pointers.npy`` and ``raw_mel.npy``, so nothing the
reader uses can follow the last array. Any other interrupted record is lost: the error names
its key, and counts it as one sample read and dropped. Audio shards (:data:`AUDIO_LAYOUT`) follow
the same rule with their own members: ``raw.flac`` sorts after ``edit.flac``, ``edl.json``,
``mel.json`` and ``meta.json``.

Members whose file name has no dot after its first character (a README), directories and
webdataset's ``__key__``-style entries are not sample members and are passed over; members with
unknown suffixes (``KEY.wav``) stay in the record and are ignored by decoding. A key may begin
with a dot (``.hidden.raw_mel.npy`` has key ``.hidden``), so such files are read, not lost.

What else is damage, not an end: a block of zeros is a tar's end only when a second one follows
and nothing but zeros comes after them (a zeroed block inside the archive, or "a lone zero
block" at the end of a file cut short, raises); a shard that ends cleanly with fewer samples
than its sample count (``index.json``) says is ``truncated_shard`` (a download cut short into a
pre-allocated, zero-filled file looks like that); without a count, so is a zero tail longer than
tar padding (:data:`ZERO_TAIL_SLACK`). What stays undetectable without ``index.json``: a file cut
at a member boundary and not padded beyond a record, and one whose pre-allocated size was at most
the padding past its last complete member (docs/bad-input.md).

Members are bounded before they are read and a stalled ``pipe:`` read fails (:class:`ReadLimits`);
hard links resolve to the earlier member, other links are bad samples (:func:`iter_tar_members`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import re
import tarfile
from collections.abc import Callable, Iterator

from ..sample import SampleError
from .shardlist import is_local, local_path
from .stall import ReadStalled, open_shard_stream

__all__ = [
    "ANY_LAYOUT",
    "AUDIO_LAYOUT",
    "MEL_LAYOUT",
    "MEMBER_REASONS",
    "REQUIRED_MEMBERS",
    "SHARD_REASONS",
    "BadMember",
    "ReadLimits",
    "Record",
    "RecordLayout",
    "ShardReadError",
    "iter_records",
    "iter_tar_members",
    "member_error",
    "short_shard_error",
    "split_member_name",
]

REQUIRED_MEMBERS = ("raw_mel.npy", "edit_mel.npy", "pointers.npy")
"""The members every sample of a mel shard needs; ``meta.json`` is optional, other suffixes are ignored."""


@dataclasses.dataclass(frozen=True)
class RecordLayout:
    """Which members of a shard are read, and when a record holds all it needs.

    ``required``: alternative sets of members, one of which a complete record holds all of;
    ``optional``: members read too when present. Members of no set are passed over unread.
    Every required set must sort after its optional members (so, in a writer's sorted order, a
    record holding a required set in full has nothing more to come: see the module docstring).
    """

    required: tuple[tuple[str, ...], ...]
    optional: tuple[str, ...] = ()

    @property
    def decoded(self) -> frozenset[str]:
        return frozenset((*(m for members in self.required for m in members), *self.optional))

    def is_complete(self, members: object) -> bool:
        return any(all(m in members for m in required) for required in self.required)


MEL_LAYOUT = RecordLayout((REQUIRED_MEMBERS,), ("meta.json",))
"""Mel shards: the three arrays, and ``meta.json``."""
AUDIO_LAYOUT = RecordLayout((("edl.json", "mel.json", "raw.flac"),), ("edit.flac", "meta.json"))
"""Audio shards (``pack-audio --store audio``): the recording, its EDL and mel settings; the export and meta."""
ANY_LAYOUT = RecordLayout((*MEL_LAYOUT.required, *AUDIO_LAYOUT.required), ("edit.flac", "meta.json"))
"""Either kind, for tools that read whatever a shard holds (``check``, ``info``)."""

SHARD_REASONS = ("corrupt_shard", "empty_shard", "missing_shard", "no_usable_samples", "not_a_tar",
                 "stalled_shard", "truncated_shard", "unreadable_shard")
"""Reasons of :class:`ShardReadError`: what went wrong with a whole shard (or its tail)."""

MEMBER_REASONS = ("link_member", "member_too_large")
"""Reasons a record carries for a member that is not read: a link or special file, or one over its limit."""

_MEMBER_NAME = re.compile(r"^((?:.*/|)\.*[^./]+)\.([^/]+)$")
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


@dataclasses.dataclass(frozen=True)
class ReadLimits:
    """What reading one shard may cost: bytes per member held in memory, seconds without data.

    ``max_array_bytes`` bounds each ``.npy`` member (default 1 GiB; 128 mels x 2 hours at 100
    frames/s in float32 is 369 MB), ``max_meta_bytes`` bounds ``meta.json`` (default 4 MiB). A
    member over its limit is reported as a bad sample (``member_too_large``) without being read,
    so a tiny shard holding a huge sparse member allocates nothing. ``stall_timeout``: seconds a
    shard read through a command (``pipe:``; ``curl`` and ``gsutil`` for ``http(s):`` and ``gs:``)
    may wait for data before the shard fails as ``stalled_shard`` (``None``: wait forever).

    >>> ReadLimits().limit_for("meta.json")
    4194304
    """

    max_array_bytes: int = 2**30
    max_meta_bytes: int = 4 * 2**20
    stall_timeout: float | None = None

    def __post_init__(self) -> None:
        for name in ("max_array_bytes", "max_meta_bytes"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be an int >= 1 ({value!r} given)")
        timeout = self.stall_timeout
        if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, (int, float))
                                    or not timeout > 0):
            raise ValueError(f"stall_timeout must be a number of seconds > 0 or None ({timeout!r} given)")

    def limit_for(self, suffix: str) -> int:
        """The byte limit of a member with this suffix (``"meta.json"``, ``"raw_mel.npy"``...)."""
        return self.max_meta_bytes if suffix.lower().endswith(".json") else self.max_array_bytes


@dataclasses.dataclass(frozen=True)
class BadMember:
    """Stands for the data of a member that was not read: ``reason`` (one of :data:`MEMBER_REASONS`)
    and ``detail``, which says why and what to do."""

    reason: str
    detail: str


@dataclasses.dataclass
class Record:
    """The members of one sample in a shard: ``{"raw_mel.npy": b"...", ...}``, undecoded.

    ``index`` is the sample's position in its shard (0-based), its address for resuming; every
    record counts, bad ones too. ``problem`` is set when the grouping found the record bad (its
    key repeats, its members are split, a member repeats, a member was not read: a link or one
    over its :class:`ReadLimits`); decoding raises it. Members decoding does not read (anything
    but the three arrays and ``meta.json``) are listed with ``None``, and so are members not read.
    """

    key: str
    index: int
    members: dict[str, bytes | bytearray | None]
    url: str
    problem: SampleError | None = None


def member_error(record: Record, reason: str, member: str, message: str) -> SampleError:
    """The :class:`~streams.sample.SampleError` of ``record``'s ``member``, its message naming the sample and shard."""
    return SampleError(f"sample {record.key!r} in shard {record.url}, member {member}: {message}", reason=reason,
                       key=record.key, url=record.url, member=member)


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
        except tarfile.EOFHeaderError:
            _check_archive_end(archive)
            raise
        except (tarfile.EmptyHeaderError, tarfile.TruncatedHeaderError, tarfile.InvalidHeaderError) as err:
            if archive.offset == 0:  # the first header: tarfile reports it (an empty file, not a tar)
                raise
            if isinstance(err, tarfile.EmptyHeaderError):
                raise _TarDamage("truncated_shard", "the tar ends at a member boundary without its "
                                                    "end-of-archive marker") from None
            if isinstance(err, tarfile.TruncatedHeaderError):
                raise _TarDamage("truncated_shard", f"the tar ends inside a member header (at byte "
                                                    f"{archive.offset})") from None
            raise _TarDamage("corrupt_shard", f"the member header at byte {archive.offset} is damaged ({err})"
                             ) from None


ZERO_TAIL_SLACK = 1 << 16
"""Zero bytes allowed past the end-of-archive marker and its padding to a 10240-byte record (what
``tarfile``, GNU tar and webdataset write); 64 KiB more covers blocking factors up to 128. A longer
zero tail is a file pre-allocated and cut short: ``truncated_shard`` even without ``index.json``."""


def _check_archive_end(archive: tarfile.TarFile) -> None:
    """A block of zeros was read at ``archive.offset``: raise :class:`_TarDamage` unless it starts
    a real end of archive (a second zero block, then nothing but zeros to the end of the file)."""
    start = archive.offset
    second = archive.fileobj.read(tarfile.BLOCKSIZE)
    if len(second) < tarfile.BLOCKSIZE and not second.strip(b"\0"):
        raise _TarDamage("truncated_shard", f"the tar ends with a lone zero block at byte {start} (an end-of-archive "
                                            "marker is two): it was cut short")
    if second.strip(b"\0"):
        raise _TarDamage("corrupt_shard", f"a block of zeros at byte {start} is followed by more data: part of the tar "
                                          "was overwritten with zeros (or two tars were joined)")
    position = start + 2 * tarfile.BLOCKSIZE
    while chunk := archive.fileobj.read(1 << 16):
        rest = chunk.lstrip(b"\0")
        if rest:
            raise _TarDamage("corrupt_shard", f"the end-of-archive marker at byte {start} is followed by non-zero "
                                              f"data at byte {position + len(chunk) - len(rest)}: part of the tar "
                                              "was overwritten with zeros (or two tars were joined)")
        position += len(chunk)
    padded_end = -(-(start + 2 * tarfile.BLOCKSIZE) // tarfile.RECORDSIZE) * tarfile.RECORDSIZE
    if position - padded_end > ZERO_TAIL_SLACK:
        raise _TarDamage("truncated_shard", f"the members end at byte {start} but {position - start:,} zero bytes "
                                            "follow, far more than a tar writer pads: a download or copy cut short "
                                            "into a pre-allocated, zero-filled file (later members are lost)")


def short_shard_error(url: str, records: int, expected: int) -> ShardReadError:
    """The error of a shard that ended cleanly after ``records`` records when its count says ``expected``."""
    return _shard_error(url, "truncated_shard", f"the tar ends cleanly after {records} sample(s) but its sample count "
                                                f"(index.json or sample_counts) says {expected}: it was cut short (a "
                                                "download cut short into a pre-allocated file leaves a zero-filled "
                                                "tail like this) or the count is stale",
                        complete_records=records)


_FIX = {
    "missing_shard": "check the path or brace pattern (in a config, relative paths are relative to the config file)",
    "unreadable_shard": "check permissions, the URL and network access, then retry",
    "not_a_tar": "shards must be POSIX tar files (optionally .tar.gz); re-pack it with `python -m pipelines pack`",
    "empty_shard": "re-write it, or remove it from the shard list",
    "truncated_shard": "re-upload or re-pack the shard (an upload cut short is the usual cause)",
    "stalled_shard": "check the command and the network; raise the stall timeout if the source is just slow",
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
    except _TarDamage as err:
        raise _shard_error(url, err.reason, err.detail + " before its first member") from None
    except ReadStalled as err:
        raise _shard_error(url, "stalled_shard", f"reading it stalled ({err})") from err
    except tarfile.ReadError as err:
        if str(err) == "empty file":
            raise _shard_error(url, "empty_shard", "the file is empty (0 bytes)") from err
        raise _shard_error(url, "not_a_tar", f"it is not a tar file ({err})") from err
    except Exception as err:  # a failing pipe: command, a network error, a bad compressed stream
        raise _shard_error(url, "unreadable_shard", f"cannot read it ({type(err).__name__}: {err})") from err


def _open_stream(url: str, limits: ReadLimits) -> object:
    """The shard's byte stream; a missing file, a folder or an unopenable URL raises :class:`ShardReadError`."""
    if is_local(url) and os.path.isdir(local_path(url)):
        raise _shard_error(url, "not_a_tar", "it is a folder, not a tar file; list the shard files inside it "
                                             f"(a pattern like {os.path.join(local_path(url), '*.tar')})")
    try:
        return open_shard_stream(url, limits.stall_timeout)
    except FileNotFoundError as err:
        raise _shard_error(url, "missing_shard", "the file does not exist") from err
    except Exception as err:  # permissions, an unknown scheme...
        raise _shard_error(url, "unreadable_shard", f"cannot open it ({type(err).__name__}: {err})") from err


def _over_limit(name: str, size: int, limits: ReadLimits) -> BadMember | None:
    parts = split_member_name(name)
    limit = limits.limit_for(parts[1] if parts else name)
    if size <= limit:
        return None
    return BadMember("member_too_large", f"member {name} is {size:,} bytes, over the {limit:,}-byte limit for such "
                                         "members (ReadLimits; source.max_array_mb / max_meta_mb in a config); raise "
                                         "the limit if the sample is genuine")


def _reread_member(url: str, archive: tarfile.TarFile, target: tarfile.TarInfo, limits: ReadLimits) -> bytes:
    """The data of ``target``, a member read earlier from this shard, read again (a hard link's content).

    A plain local tar is read at the member's offset; anything else (compressed, remote, sparse)
    is streamed again from the start up to that member.
    """
    plain = getattr(archive.fileobj, "comptype", None) == "tar" and not target.issparse()
    if plain and is_local(url) and os.path.isfile(local_path(url)):
        with open(local_path(url), "rb") as f:
            f.seek(target.offset_data)
            return f.read(target.size)
    stream = open_shard_stream(url, limits.stall_timeout)
    try:
        with tarfile.open(fileobj=stream, mode="r|*") as again:
            for info in again:
                if info.offset_data == target.offset_data and info.name == target.name:
                    return again.extractfile(info).read()
                again.members = []
    finally:
        _command_failure(stream)
    raise tarfile.ReadError(f"member {target.name} is no longer where it was")


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


def _member_data(url: str, archive: tarfile.TarFile, info: tarfile.TarInfo, earlier: dict[str, tarfile.TarInfo],
                 wanted: Callable[[str], bool] | None, limits: ReadLimits) -> bytes | bytearray | BadMember | None:
    """What :func:`iter_tar_members` yields for ``info``: its bytes, ``None`` when not wanted, or a
    :class:`BadMember` (a link that cannot be resolved, a symlink, a special file, over its limit)."""
    if wanted is not None and not wanted(info.name):
        return None
    if info.issym():
        return BadMember("link_member", f"member {info.name} is a symbolic link (to {info.linkname}); store the file "
                                        "itself (GNU tar: --dereference)")
    if info.islnk():
        target = earlier.get(info.linkname)
        if target is None:
            return BadMember("link_member", f"member {info.name} is a hard link to {info.linkname}, which is not an "
                                            "earlier file of this shard; store the file itself (GNU tar: "
                                            "--hard-dereference)")
        return _over_limit(info.name, target.size, limits) or _reread_member(url, archive, target, limits)
    if not info.isreg():
        return BadMember("link_member", f"member {info.name} is not a regular file (tar type {info.type!r}); store "
                                        "a regular file")
    return _over_limit(info.name, info.size, limits) or _read_member(archive, info)


def iter_tar_members(url: str, wanted: Callable[[str], bool] | None = None, *,
                     limits: ReadLimits | None = None) -> Iterator[tuple[str, bytes | bytearray | BadMember | None]]:
    """Yield ``(name, bytes)`` for each file of the tar at ``url``, in tar order.

    Members for which ``wanted(name)`` is false come as ``(name, None)``: their data is passed
    over in the stream, never held in memory (audio files next to the mels, say). A wanted
    member that is not read comes as ``(name, BadMember)``: over its size limit (``limits``), a
    symbolic link, a special file, or a hard link to no earlier member; a hard link to an
    earlier member yields that member's bytes.

    Raises :class:`ShardReadError` (after the members read in full) when the shard does not
    exist (``missing_shard``), cannot be opened or read (``unreadable_shard``), is not a tar
    (``not_a_tar``, a folder included), is an empty file (``empty_shard``), ends before its
    end-of-archive marker or with a lone zero block (``truncated_shard``), has a garbled header
    or a zeroed block followed by data (``corrupt_shard``), or is a ``pipe:`` command that
    stopped sending data (``stalled_shard``). ``member`` names the member whose data was cut,
    when the damage hit one.
    """
    limits = limits or ReadLimits()
    stream = _open_stream(url, limits)
    try:
        archive = _open_archive(stream, url)
        last: str | None = None
        earlier: dict[str, tarfile.TarInfo] = {}  # regular files by name: targets of hard links
        while True:
            reading = None
            try:
                info = archive.next()
                if info is None:
                    return
                if info.isdir() or _WEBDATASET_META.match(info.name):
                    continue
                reading = info.name
                data = _member_data(url, archive, info, earlier, wanted, limits)
            except _TarDamage as err:
                where = f" after member {last}" if last else " before its first member"
                raise _shard_error(url, err.reason, err.detail + where) from None
            except ReadStalled as err:
                where = f" while reading member {reading}" if reading else (f" after member {last}" if last else "")
                raise _shard_error(url, "stalled_shard", f"reading stalled{where} ({err})", member=reading) from err
            except tarfile.ReadError as err:
                detail = (f"member {reading} is cut short ({err})" if reading is not None
                          else f"the tar ends inside the data or padding of member {last} ({err})")
                reason = "truncated_shard" if "unexpected end" in str(err) else "corrupt_shard"
                raise _shard_error(url, reason, detail, member=reading) from err
            except Exception as err:  # I/O errors mid-stream: network, a failing pipe: command, zlib
                where = f" while reading member {reading}" if reading else (f" after member {last}" if last else "")
                raise _shard_error(url, "unreadable_shard", f"read failed{where} ({type(err).__name__}: {err})",
                                   member=reading) from err
            archive.members = []  # stream mode would keep every TarInfo otherwise
            if info.isreg():
                earlier[info.name] = info
            last = info.name
            yield info.name, data
    except ShardReadError as err:
        # a failed download looks like an empty or cut tar: say why (a stalled command was stopped by us)
        failure = _command_failure(stream) if err.reason != "stalled_shard" else None
        if failure is not None:
            raise _shard_error(url, "unreadable_shard", f"reading it failed ({failure}); what arrived: {err.detail}",
                               member=err.member) from err
        raise
    finally:
        with contextlib.suppress(Exception):  # a pipe: command stopped early exits with SIGPIPE; what was read stands
            stream.close()


def _finish(record: Record, earlier: dict[str, tuple[int, frozenset[str]]]) -> Record:
    """Set ``record.problem`` if its key was seen before in the shard (split members or a repeat)."""
    if record.key not in earlier or record.problem is not None:
        return record
    first_index, first_members = earlier[record.key]
    shared = sorted(first_members & set(record.members))
    if shared:
        message = (f"the key appears twice (records {first_index} and {record.index}; both hold {', '.join(shared)}); "
                   "keys must be unique within a shard: rename one of the samples when packing")
        record.problem = member_error(record, "duplicate_key", shared[0], message)
    else:
        message = (f"its members are not adjacent ({', '.join(sorted(first_members))} at record {first_index}, "
                   f"{', '.join(sorted(record.members))} at record {record.index}, other samples between); write "
                   "each sample's members together (sort the files by key before tar)")
        record.problem = member_error(record, "members_not_adjacent", sorted(record.members)[0], message)
    return record


def _decoded_member(layout: RecordLayout) -> Callable[[str], bool]:
    decoded = layout.decoded

    def wanted(name: str) -> bool:
        parts = split_member_name(name)
        return parts is not None and parts[1].lower() in decoded

    return wanted


def iter_records(url: str, *, limits: ReadLimits | None = None, expected: int | None = None,
                 layout: RecordLayout = MEL_LAYOUT) -> Iterator[Record]:
    """Yield the records of the shard at ``url`` in tar order, bad ones included (``problem`` set).

    Raises :class:`ShardReadError` when the shard cannot be read to its clean end (after the
    records complete before the damage; see the module docstring for which those are),
    ``empty_shard`` when a readable tar holds no sample members at all, and ``truncated_shard``
    when it ends cleanly with fewer records than ``expected`` (its count from ``index.json``).
    ``limits`` bounds member sizes and ``pipe:`` stalls (:class:`ReadLimits`). ``layout`` says
    which members are read and which complete a record (:data:`MEL_LAYOUT` by default).

    A member repeated in a record starts the next record when the record already holds all
    three arrays (the same sample written twice in a row): the later copy is then a
    ``duplicate_key``, the first one is kept.
    """
    current: Record | None = None
    earlier: dict[str, tuple[int, frozenset[str]]] = {}  # key -> (record index, member suffixes)
    index = 0
    try:
        for name, data in iter_tar_members(url, wanted=_decoded_member(layout), limits=limits):
            parts = split_member_name(name)
            if parts is None:
                continue  # files without an extension (READMEs) are not members
            key, suffix = parts[0], parts[1].lower()
            repeat_of_whole = current is not None and suffix in current.members and layout.is_complete(current.members)
            if current is None or key != current.key or repeat_of_whole:
                if current is not None:
                    yield _finish(current, earlier)
                    earlier.setdefault(current.key, (current.index, frozenset(current.members)))
                    index += 1
                current = Record(key=key, index=index, members={}, url=url)
            if suffix in current.members and current.problem is None:
                current.problem = member_error(current, "duplicate_member", suffix,
                                               "the member appears twice; keep one copy")
            if isinstance(data, BadMember):
                current.problem = current.problem or member_error(current, data.reason, suffix, data.detail)
                data = None
            current.members[suffix] = data
    except ShardReadError as err:
        damage = _after_damage(err, current, index, layout)
        if current is not None and damage.complete_records > index:
            yield _finish(current, earlier)  # the pending record survived the damage
        raise damage from err
    if current is None:
        raise _shard_error(url, "empty_shard", "the tar holds no sample members (names like KEY.raw_mel.npy)")
    yield _finish(current, earlier)
    if expected is not None and index + 1 < expected:
        raise short_shard_error(url, index + 1, expected)


def _after_damage(err: ShardReadError, current: Record | None, index: int, layout: RecordLayout) -> ShardReadError:
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
        lost, complete = hit_key, 0
    elif hit_key is not None and hit_key != current.key:
        lost, complete = hit_key, index + 1  # the next sample's first member was cut: the pending record is complete
    elif hit_key is None and layout.is_complete(current.members):
        lost, complete = None, index + 1
    else:
        lost, complete = current.key, index
    if lost is not None:
        context = f"sample {lost!r} was cut and is lost, after {complete} complete sample(s)"
    else:
        context = f"no sample was cut; {complete} complete sample(s) before the damage"
    return _shard_error(err.url, err.reason, f"{err.detail} ({context})", member=err.member, key=lost,
                        complete_records=complete)
