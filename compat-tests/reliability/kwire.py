"""Just enough of the Kafka wire protocol, hand-encoded, for the reliability battery.

The battery talks to the broker over raw sockets so that it can send exactly the bytes it
wants (valid, mutated, trickled or hostile), which no client library allows. Standard library
only; CRC32C is computed here because record batches v2 need it and zlib only has CRC32.
"""

import socket
import struct
import time
import zlib

# --------------------------------------------------------------------------------------
# CRC32C (Castagnoli), table-driven. Fast enough for the ~1 MB batches built here.
# --------------------------------------------------------------------------------------


def _crc32c_table():
    table = []
    for n in range(256):
        c = n
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        table.append(c)
    return table


_CRC32C = _crc32c_table()


def crc32c(data, crc=0):
    crc ^= 0xFFFFFFFF
    t = _CRC32C
    for b in data:
        crc = t[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


assert crc32c(b"123456789") == 0xE3069283  # the standard check value


# --------------------------------------------------------------------------------------
# Primitive encoders
# --------------------------------------------------------------------------------------

def uvarint(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def varint(n):
    """Zigzag varint/varlong, as record fields use."""
    return uvarint((n << 1) ^ (n >> 63))


class W:
    """A request body writer that remembers where every length and count field is.

    The fuzzer uses `lens` to aim its absurd values (0x7fffffff element counts, huge string
    lengths) at real length fields instead of at random offsets.
    """

    def __init__(self, flexible=False):
        self.b = bytearray()
        self.flex = flexible
        self.lens = []  # (offset, width) of length/count fields; width 0 = unsigned varint

    def i8(self, v):
        self.b += struct.pack(">b", v)
        return self

    def i16(self, v):
        self.b += struct.pack(">h", v)
        return self

    def i32(self, v):
        self.b += struct.pack(">i", v)
        return self

    def i64(self, v):
        self.b += struct.pack(">q", v)
        return self

    def f64(self, v):
        self.b += struct.pack(">d", v)
        return self

    def boolean(self, v):
        return self.i8(1 if v else 0)

    def uuid(self, v=b"\0" * 16):
        self.b += v
        return self

    def _lenv(self, n):
        """A compact length or count: unsigned varint n+1."""
        self.lens.append((len(self.b), 0))
        self.b += uvarint(n + 1)

    def _len16(self, n):
        self.lens.append((len(self.b), 2))
        self.b += struct.pack(">h", n)

    def _len32(self, n):
        self.lens.append((len(self.b), 4))
        self.b += struct.pack(">i", n)

    def string(self, s):
        """STRING / NULLABLE_STRING, compact in flexible versions; None = null."""
        if s is None:
            if self.flex:
                self.b += uvarint(0)
            else:
                self.b += struct.pack(">h", -1)
            return self
        data = s.encode() if isinstance(s, str) else s
        if self.flex:
            self._lenv(len(data))
        else:
            self._len16(len(data))
        self.b += data
        return self

    def bytes_(self, data):
        """BYTES / NULLABLE_BYTES (int32 length, or compact)."""
        if data is None:
            self.b += uvarint(0) if self.flex else struct.pack(">i", -1)
            return self
        if self.flex:
            self._lenv(len(data))
        else:
            self._len32(len(data))
        self.b += data
        return self

    def array(self, items, fn):
        """ARRAY of items written by fn(self, item); None = null array."""
        if items is None:
            self.b += uvarint(0) if self.flex else struct.pack(">i", -1)
            return self
        if self.flex:
            self._lenv(len(items))
        else:
            self._len32(len(items))
        for it in items:
            fn(self, it)
        return self

    def i32s(self, items):
        return self.array(items, lambda w, v: w.i32(v))

    def strings(self, items):
        return self.array(items, lambda w, v: w.string(v))

    def tags(self):
        """An empty tagged-field section (flexible versions only)."""
        if self.flex:
            self.b += uvarint(0)
        return self


def request(api_key, version, correlation_id, body, flexible, client_id="reliability"):
    """A full frame: size prefix, header v1 (v2 when flexible) and body."""
    h = struct.pack(">hhi", api_key, version, correlation_id)
    cid = client_id.encode()
    h += struct.pack(">h", len(cid)) + cid
    if flexible:
        h += b"\x00"  # header tagged fields
    payload = h + bytes(body)
    return struct.pack(">i", len(payload)) + payload


# --------------------------------------------------------------------------------------
# Record batches (magic 2)
# --------------------------------------------------------------------------------------

def encode_record(offset_delta, key, value, headers=(), ts_delta=0):
    body = bytearray(b"\x00")  # attributes
    body += varint(ts_delta) + varint(offset_delta)
    for part in (key, value):
        if part is None:
            body += varint(-1)
        else:
            body += varint(len(part)) + part
    body += varint(len(headers))
    for hk, hv in headers:
        body += varint(len(hk)) + hk
        body += varint(-1) if hv is None else varint(len(hv)) + hv
    return varint(len(body)) + bytes(body)


CODEC_NONE, CODEC_GZIP, CODEC_SNAPPY, CODEC_LZ4, CODEC_ZSTD = 0, 1, 2, 3, 4


def record_batch(records_section, count, codec=CODEC_NONE, base_ts=None, producer_id=-1,
                 producer_epoch=-1, base_sequence=-1, last_offset_delta=None):
    """A magic-2 batch around an already encoded (and possibly compressed) records section.
    `codec` is the whole attributes field (codec in the low 3 bits)."""
    if base_ts is None:
        base_ts = int(time.time() * 1000)
    if last_offset_delta is None:
        last_offset_delta = count - 1
    after_crc = struct.pack(">hiqqqhii", codec, last_offset_delta, base_ts, base_ts,
                            producer_id, producer_epoch, base_sequence, count) + records_section
    crc = crc32c(after_crc)
    after_len = struct.pack(">ibI", 0, 2, crc) + after_crc  # leader epoch, magic, crc
    return struct.pack(">qi", 0, len(after_len)) + after_len


def fix_crc(batch):
    """Recomputes the CRC of a (mutated) batch so that the broker looks past it."""
    b = bytearray(batch)
    if len(b) >= 21:
        b[17:21] = struct.pack(">I", crc32c(bytes(b[21:])))
    return bytes(b)


def simple_batch(values, key=b"k"):
    section = b"".join(encode_record(i, key, v) for i, v in enumerate(values))
    return record_batch(section, len(values))


def bomb_batch(codec, inflated_bytes, key=b"bomb"):
    """One record whose value is `inflated_bytes` zeros, compressed with gzip or zstd.

    Streams the zeros through the compressor 1 MiB at a time, so a 1 GiB bomb costs this
    process about as much memory as the compressed output (~1 MB for gzip, ~32 KB zstd).
    """
    body_len = len(b"\x00" + varint(0) + varint(0) + varint(len(key)) + key
                   + varint(inflated_bytes)) + inflated_bytes + 1
    head = varint(body_len) + b"\x00" + varint(0) + varint(0) + varint(len(key)) + key \
        + varint(inflated_bytes)
    tail = varint(0)  # no headers
    if codec == CODEC_GZIP:
        comp = zlib.compressobj(9, zlib.DEFLATED, 31)
        flush = comp.flush
    elif codec == CODEC_ZSTD:
        import zstandard  # from the battery's venv
        comp = zstandard.ZstdCompressor(level=3).compressobj()
        flush = comp.flush
    else:
        raise ValueError(codec)
    out = [comp.compress(head)]
    chunk = bytes(1 << 20)
    left = inflated_bytes
    while left > 0:
        n = min(left, len(chunk))
        out.append(comp.compress(chunk if n == len(chunk) else chunk[:n]))
        left -= n
    out.append(comp.compress(tail))
    out.append(flush())
    return record_batch(b"".join(out), 1, codec=codec)


# --------------------------------------------------------------------------------------
# Requests used directly by the cases
# --------------------------------------------------------------------------------------

def api_versions_v0(correlation_id=1, client_id="reliability"):
    return request(18, 0, correlation_id, b"", False, client_id)


def produce(topic, partition, batch, version=8, acks=-1, timeout_ms=30000, correlation_id=1):
    flex = version >= 9
    w = W(flex)
    w.string(None).i16(acks).i32(timeout_ms)

    def part(w, _):
        w.i32(partition).bytes_(batch).tags()

    def top(w, _):
        w.string(topic).array([0], part).tags()

    w.array([0], top).tags()
    return request(0, version, correlation_id, w.b, flex)


def init_producer_id_v1(correlation_id=1, transaction_timeout_ms=60000):
    """InitProducerId v1 without a transactional id: a new idempotent producer id."""
    w = W(False).string(None).i32(transaction_timeout_ms)
    return request(22, 1, correlation_id, w.b, False)


def parse_init_producer_id_v1(resp):
    """(error code, producer id, producer epoch) of an InitProducerId v1 response body."""
    _throttle, err, pid, epoch = struct.unpack_from(">ihqh", resp, 0)
    return err, pid, epoch


class Reader:
    """Sequential reads from a response body."""

    def __init__(self, buf):
        self.buf, self.off = buf, 0

    def take(self, fmt):
        vals = struct.unpack_from(fmt, self.buf, self.off)
        self.off += struct.calcsize(fmt)
        return vals[0] if len(vals) == 1 else vals

    def string(self):
        n = self.take(">h")
        if n < 0:
            return None
        s = self.buf[self.off:self.off + n].decode()
        self.off += n
        return s


def parse_produce_result(resp, version=8):
    """(error code, base offset) of the single partition of a non-flexible Produce
    response (after the correlation id)."""
    assert version < 9
    r = Reader(resp)
    r.take(">i")  # topics
    r.string()    # name
    r.take(">i")  # partitions
    _index, err, base_offset = r.take(">ihq")
    return err, base_offset


def parse_produce_error(resp, version=8):
    """Error code of the single partition of a non-flexible Produce response."""
    return parse_produce_result(resp, version)[0]


def create_topics_v2(topics, correlation_id=1, timeout_ms=30000):
    """topics: list of (name, partitions, {config: value})."""
    w = W(False)

    def cfg(w, kv):
        w.string(kv[0]).string(kv[1])

    def top(w, t):
        name, parts, configs = t
        w.string(name).i32(parts).i16(1).array([], None).array(sorted(configs.items()), cfg)

    w.array(topics, top).i32(timeout_ms).boolean(False)
    return request(19, 2, correlation_id, w.b, False)


def parse_create_topics_v2(resp):
    """{name: error_code} from a CreateTopics v2 response body (after the correlation id)."""
    r = Reader(resp)
    r.take(">i")  # throttle time
    out = {}
    for _ in range(r.take(">i")):
        name = r.string()
        out[name] = r.take(">h")
        r.string()  # error message
    return out


def fetch_v4(topic, partition, offset, max_bytes=1 << 20, correlation_id=1, max_wait_ms=0):
    w = W(False)
    w.i32(-1).i32(max_wait_ms).i32(0).i32(max_bytes).i8(0)
    w.array([0], lambda w, _: w.string(topic).array(
        [0], lambda w, _: w.i32(partition).i64(offset).i32(max_bytes)))
    return request(1, 4, correlation_id, w.b, False)


def metadata_v4(topics, correlation_id=1):
    """Metadata v4 for `topics` (None = every topic), without auto-creation."""
    w = W(False).strings(topics).boolean(False)
    return request(3, 4, correlation_id, w.b, False)


def parse_metadata_v4(resp):
    """A Metadata v4 response body (after the correlation id) as {"brokers": {id: (host,
    port)}, "controller": id, "topics": {name: (error, {partition: (error, leader,
    [replicas], [isr])})}}."""
    r = Reader(resp)
    r.take(">i")  # throttle time
    brokers = {}
    for _ in range(r.take(">i")):
        node = r.take(">i")
        host = r.string()
        brokers[node] = (host, r.take(">i"))
        r.string()  # rack
    r.string()  # cluster id
    controller = r.take(">i")
    topics = {}
    for _ in range(r.take(">i")):
        terr = r.take(">h")
        name = r.string()
        r.take(">b")  # is_internal
        parts = {}
        for _ in range(r.take(">i")):
            perr, index, leader = r.take(">hii")
            replicas = [r.take(">i") for _ in range(r.take(">i"))]
            isr = [r.take(">i") for _ in range(r.take(">i"))]
            parts[index] = (perr, leader, replicas, isr)
        topics[name] = (terr, parts)
    return {"brokers": brokers, "controller": controller, "topics": topics}


def parse_api_versions_v0(resp):
    """(error_code, {api_key: (min, max)}) from an ApiVersions v0 response body."""
    err, n = struct.unpack_from(">hi", resp, 0)
    apis = {}
    for i in range(max(n, 0)):
        k, lo, hi = struct.unpack_from(">hhh", resp, 6 + 6 * i)
        apis[k] = (lo, hi)
    return err, apis


# --------------------------------------------------------------------------------------
# Blocking helpers
# --------------------------------------------------------------------------------------

def recv_exact(sock, n):
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise ConnectionError(f"closed after {len(buf)} of {n} bytes")
        buf += chunk
    return bytes(buf)


def read_response(sock):
    """(correlation_id, body) of the next response frame; the header's tagged fields, if
    any, stay at the front of body (callers that parse flexible bodies skip them)."""
    (size,) = struct.unpack(">i", recv_exact(sock, 4))
    payload = recv_exact(sock, size)
    (cid,) = struct.unpack_from(">i", payload, 0)
    return cid, payload[4:]


def round_trip(addr, frame, timeout=10.0):
    with socket.create_connection(addr, timeout=timeout) as s:
        s.settimeout(timeout)
        s.sendall(frame)
        return read_response(s)


def api_versions(addr, timeout=5.0):
    """The advertised {api_key: (min, max)}; raises if the broker does not answer."""
    _cid, body = round_trip(addr, api_versions_v0(), timeout)
    err, apis = parse_api_versions_v0(body)
    if err != 0:
        raise RuntimeError(f"ApiVersions error {err}")
    return apis
