"""Addresses as keys that sort in numeric order: a range of addresses is a range of keys.

A key is one version byte (4 or 6) and the address's 4 or 16 bytes, so comparing two keys
byte by byte (SQLite's order for BLOBs) compares the addresses as numbers within a version,
and every IPv4 key sorts before every IPv6 key: a range never mixes the two. A CIDR range is
the pair of keys of its first and last address.

Stored ip/from/to text is what the intake normalised (an IPv4-mapped IPv6 address is stored
as its IPv4 address, see events.plain_address), and so are the questions (queries.parse_ip):
the keys compare what the text names, as ipaddress reads it.
"""

import functools
import ipaddress

Key = bytes
Span = tuple[Key, Key]  # the keys of the first and the last address of a range


def key_of(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> Key:
    return bytes((address.version,)) + address.packed


@functools.lru_cache(maxsize=65536)  # real traffic repeats the same addresses
def address_key(text: str | None) -> Key | None:
    """The key of a single address written as text; None for a range, an access group or
    anything else that is not one address."""
    if not text or "/" in text:
        return None
    try:
        return key_of(ipaddress.ip_address(text))
    except ValueError:
        return None


@functools.lru_cache(maxsize=4096)  # the allow-list's few ranges, over and over
def network_span(text: str | None) -> Span | None:
    """The keys of the first and last address of a CIDR range written as text; None for an
    address or any other text."""
    if not text or "/" not in text:
        return None
    try:
        network = ipaddress.ip_network(text, strict=False)
    except ValueError:
        return None
    return key_of(network.network_address), key_of(network.broadcast_address)


def span_of(target: ipaddress.IPv4Address | ipaddress.IPv6Address
            | ipaddress.IPv4Network | ipaddress.IPv6Network) -> Span:
    """The keys of the first and last address a question covers (one address: itself)."""
    if isinstance(target, ipaddress.IPv4Network | ipaddress.IPv6Network):
        return key_of(target.network_address), key_of(target.broadcast_address)
    return key_of(target), key_of(target)


@functools.lru_cache(maxsize=65536)
def key_text(key: Key) -> str:
    """The address a key stands for, written as the intake writes it."""
    return str(ipaddress.ip_address(key[1:]))


def overlaps(one: Span, other: Span) -> bool:
    """Whether two ranges share an address; keys of different versions never do."""
    return one[0] <= other[1] and other[0] <= one[1]
