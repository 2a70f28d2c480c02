"""IOU's NVRAM file (`nvram_<application id>`): the startup and private configs in the IOS NVRAM layout.

Layout (big-endian), in the first half of the file; the second half is left as it is:

    startup header, 36 bytes: magic 0xABCD, format (1 plain, 2 LZC-compressed), checksum, IOS version,
        start address, end address, length, then zeros (bytes 24-35 describe compression)
    startup config, padded to 4 bytes (4 more bytes of padding when IOS <= 15.0 and padding was needed)
    private header, 16 bytes: magic 0xFEDC, format 1, start address, end address, length
    private config
    free space, then the file area, which grows down from the end of the first half (kept as it is)

Addresses count from 0x10000000 at the start of the file. The checksum makes the one's-complement sum of every
16-bit word of the first half come out as 0xFFFF.
"""

from __future__ import annotations

import struct

from gns3core.checksum import internet_checksum

STARTUP_MAGIC = 0xABCD
PRIVATE_MAGIC = 0xFEDC
FORMAT_PLAIN = 1
FORMAT_LZC = 2
DEFAULT_IOS_VERSION = 0x0F04
BASE_ADDRESS = 0x10000000
STARTUP_HEADER = struct.Struct(">HHHHIIIIIHHI")  # 36 bytes
PRIVATE_HEADER = struct.Struct(">HHIII")  # 16 bytes
CHECKSUM_OFFSET = 4


class NvramError(ValueError):
    """The NVRAM cannot be read or the configs do not fit."""


def _align4(offset: int) -> int:
    return (offset + 3) & ~3


def ios_version(nvram: bytes) -> int:
    """The IOS version word an existing NVRAM carries, or 15.4's when it holds no startup header."""
    if len(nvram) >= STARTUP_HEADER.size:
        magic, _format, _sum, version = struct.unpack_from(">HHHH", nvram)
        if magic == STARTUP_MAGIC:
            return version
    return DEFAULT_IOS_VERSION


def import_configs(old: bytes, startup: bytes, private: bytes | None, size: int) -> bytes:
    """A new NVRAM image holding `startup` (and `private`), keeping the rest of `old` (free space, file area and the
    unused half) byte for byte. `size` is used when there is no old NVRAM."""
    version = ios_version(old)
    total = len(old) if old else size
    data = bytearray()
    start = BASE_ADDRESS + STARTUP_HEADER.size
    data += STARTUP_HEADER.pack(STARTUP_MAGIC, FORMAT_PLAIN, 0, version, start, start + len(startup), len(startup),
                                0, 0, 0, 0, 0)
    data += startup
    padded = _align4(len(data))
    if padded != len(data) and version <= 0x0F00:
        padded += 4
    data += bytes(padded - len(data))
    if private is not None:
        start = BASE_ADDRESS + len(data) + PRIVATE_HEADER.size
        data += PRIVATE_HEADER.pack(PRIVATE_MAGIC, FORMAT_PLAIN, start, start + len(private), len(private))
        data += private
        data += bytes(_align4(len(data)) - len(data))
    used = total // 2
    if len(data) > used:
        raise NvramError(f"the configs need {len(data)} bytes but this NVRAM holds {used} "
                         f"(nvram of {total // 1024} KB); raise the VM's nvram")
    image = bytearray(old) if old else bytearray(total)
    if len(image) < total:
        image += bytes(total - len(image))
    image[:len(data)] = data
    struct.pack_into(">H", image, CHECKSUM_OFFSET, 0)
    struct.pack_into(">H", image, CHECKSUM_OFFSET, internet_checksum(image[:used]))
    return bytes(image)


def export_configs(nvram: bytes) -> tuple[bytes | None, bytes | None]:
    """(startup, private) found in an NVRAM image; None for a config that is not there. NvramError when the
    startup header is damaged."""
    if len(nvram) < STARTUP_HEADER.size:
        raise NvramError("the NVRAM is shorter than a startup header")
    magic, fmt, _sum, _version, _start, _end, length, *_rest = STARTUP_HEADER.unpack_from(nvram)
    if magic != STARTUP_MAGIC:
        return None, None
    offset = STARTUP_HEADER.size
    if offset + length > len(nvram):
        raise NvramError("the startup config runs past the end of the NVRAM")
    startup = nvram[offset:offset + length]
    if fmt == FORMAT_LZC:
        startup = lzc_decompress(startup)
    elif fmt != FORMAT_PLAIN:
        raise NvramError(f"unknown startup config format {fmt}")
    offset = _align4(offset + length)
    private = None
    for candidate in (offset, offset + 4):  # IOS <= 15.0 pads 4 more bytes
        if candidate + PRIVATE_HEADER.size <= len(nvram):
            magic, fmt, _start, _end, length = PRIVATE_HEADER.unpack_from(nvram, candidate)
            if magic == PRIVATE_MAGIC and fmt == FORMAT_PLAIN:
                begin = candidate + PRIVATE_HEADER.size
                if begin + length > len(nvram):
                    raise NvramError("the private config runs past the end of the NVRAM")
                private = nvram[begin:begin + length]
                break
    return startup, private


def lzc_decompress(data: bytes) -> bytes:
    """Decode LZC (the format of Unix `compress`, LZW with 9-16 bit codes), as IOS stores compressed configs.

    Codes are packed least significant bit first. Whenever the code width grows, or a CLEAR code (256, in block
    mode) resets the table, the reader skips to the next boundary of a group of eight codes of the old width,
    counted from where codes of that width began: that is where the compressor flushed its group.
    """
    if len(data) < 3 or data[0] != 0x1F or data[1] != 0x9D:
        raise NvramError("the compressed config has no LZC header")
    max_bits = data[2] & 0x1F
    block_mode = bool(data[2] & 0x80)
    if not 9 <= max_bits <= 16:
        raise NvramError(f"the compressed config uses {max_bits}-bit codes (9-16 allowed)")
    max_max_code = 1 << max_bits
    total_bits = len(data) * 8
    n_bits = 9
    max_code = (1 << n_bits) - 1
    table: list[bytes] = [bytes([i]) for i in range(256)]
    table.append(b"")  # 256: CLEAR in block mode, else the first free code
    free = 257 if block_mode else 256
    if not block_mode:
        table.pop()
    position = 3 * 8
    previous: bytes | None = None
    out = bytearray()

    segment = position  # where codes of the current width began

    def skip_to_group_end(position: int, width: int) -> int:
        group = width * 8
        used = position - segment
        return segment + (used - 1) + (group - (used - 1 + group) % group)

    while True:
        if free > max_code and n_bits < max_bits:
            position = segment = skip_to_group_end(position, n_bits)
            n_bits += 1
            max_code = max_max_code if n_bits == max_bits else (1 << n_bits) - 1
            continue
        if position + n_bits > total_bits:
            break
        byte_index = position >> 3
        chunk = int.from_bytes(data[byte_index:byte_index + 4], "little")
        code = (chunk >> (position & 7)) & ((1 << n_bits) - 1)
        position += n_bits
        if previous is None:
            if code > 255:
                raise NvramError("the compressed config starts with an invalid code")
            previous = table[code]
            out += previous
            continue
        if code == 256 and block_mode:
            del table[257:]
            free = 256
            position = segment = skip_to_group_end(position, n_bits)
            n_bits = 9
            max_code = (1 << n_bits) - 1
            continue
        if code < free:
            entry = table[code]
        elif code == free:
            entry = previous + previous[:1]  # the code being defined right now (KwKwK)
        else:
            raise NvramError("the compressed config is damaged (a code refers to nothing)")
        out += entry
        if free < max_max_code:
            new = previous + entry[:1]
            if free < len(table):
                table[free] = new
            else:
                table.append(new)
            free += 1
        previous = entry
    return bytes(out)
