"""The text of a crawled page's bytes, as browsers decode it (the WHATWG Encoding Standard).

Order: a byte-order mark; the first <meta charset> / http-equiv charset in the first 4 KiB when
it is a WHATWG label; UTF-8; GB18030. Only the standard's labels are read from <meta>:
`codecs.lookup` also knows rot13, base64, zlib, ..., which are no text encodings, and a page
declaring one of them (or a typo) is decoded as if it declared nothing. `decode_html` never
raises, whatever the bytes.
"""

from __future__ import annotations

import codecs
import re
from functools import cache

_META_CHARSET = re.compile(rb"""<meta[^>]*?charset\s*=\s*["']?\s*([A-Za-z0-9_.:\-]+)""", re.IGNORECASE)
_CHARSET_SNIFF_BYTES = 4096
# The labels of the WHATWG Encoding Standard (https://encoding.spec.whatwg.org/#names-and-labels),
# by the Python codec that decodes the encoding they name. Only these are read from <meta>:
# `codecs.lookup` also knows rot13, base64, zlib, ..., which are no text encodings at all.
_CODEC_LABELS = {
    "utf-8": "unicode-1-1-utf-8 unicode11utf8 unicode20utf8 utf-8 utf8 x-unicode20utf8 "
             # a UTF-16 label in an ASCII-readable <meta> is wrong by construction: HTML's
             # prescan reads it as UTF-8 (a real UTF-16 page is found by its byte-order mark)
             "unicodefffe utf-16be csunicode iso-10646-ucs-2 ucs-2 unicode unicodefeff utf-16 "
             "utf-16le",
    "cp866": "866 cp866 csibm866 ibm866",
    "iso8859_2": "csisolatin2 iso-8859-2 iso-ir-101 iso8859-2 iso88592 iso_8859-2 iso_8859-2:1987 "
                 "l2 latin2",
    "iso8859_3": "csisolatin3 iso-8859-3 iso-ir-109 iso8859-3 iso88593 iso_8859-3 iso_8859-3:1988 "
                 "l3 latin3",
    "iso8859_4": "csisolatin4 iso-8859-4 iso-ir-110 iso8859-4 iso88594 iso_8859-4 iso_8859-4:1988 "
                 "l4 latin4",
    "iso8859_5": "csisolatincyrillic cyrillic iso-8859-5 iso-ir-144 iso8859-5 iso88595 iso_8859-5 "
                 "iso_8859-5:1988",
    "iso8859_6": "arabic asmo-708 csiso88596e csiso88596i csisolatinarabic ecma-114 iso-8859-6 "
                 "iso-8859-6-e iso-8859-6-i iso-ir-127 iso8859-6 iso88596 iso_8859-6 "
                 "iso_8859-6:1987",
    "iso8859_7": "csisolatingreek ecma-118 elot_928 greek greek8 iso-8859-7 iso-ir-126 iso8859-7 "
                 "iso88597 iso_8859-7 iso_8859-7:1987 sun_eu_greek",
    # ISO-8859-8 and ISO-8859-8-I (the same bytes; only the display direction differs)
    "iso8859_8": "csiso88598e csisolatinhebrew hebrew iso-8859-8 iso-8859-8-e iso-ir-138 "
                 "iso8859-8 iso88598 iso_8859-8 iso_8859-8:1988 visual csiso88598i iso-8859-8-i "
                 "logical",
    "iso8859_10": "csisolatin6 iso-8859-10 iso-ir-157 iso8859-10 iso885910 l6 latin6",
    "iso8859_13": "iso-8859-13 iso8859-13 iso885913",
    "iso8859_14": "iso-8859-14 iso8859-14 iso885914",
    "iso8859_15": "csisolatin9 iso-8859-15 iso8859-15 iso885915 iso_8859-15 l9",
    "iso8859_16": "iso-8859-16",
    "koi8_r": "cskoi8r koi koi8 koi8-r koi8_r",
    "koi8_u": "koi8-ru koi8-u",
    "mac_roman": "csmacintosh mac macintosh x-mac-roman",
    "cp874": "dos-874 iso-8859-11 iso8859-11 iso885911 tis-620 windows-874",
    "cp1250": "cp1250 windows-1250 x-cp1250",
    "cp1251": "cp1251 windows-1251 x-cp1251",
    # Latin-1 and ASCII labels mean windows-1252 on the web; x-user-defined too, in HTML's prescan
    "cp1252": "ansi_x3.4-1968 ascii cp1252 cp819 csisolatin1 ibm819 iso-8859-1 iso-ir-100 "
              "iso8859-1 iso88591 iso_8859-1 iso_8859-1:1987 l1 latin1 us-ascii windows-1252 "
              "x-cp1252 x-user-defined",
    "cp1253": "cp1253 windows-1253 x-cp1253",
    "cp1254": "cp1254 csisolatin5 iso-8859-9 iso-ir-148 iso8859-9 iso88599 iso_8859-9 "
              "iso_8859-9:1989 l5 latin5 windows-1254 x-cp1254",
    "cp1255": "cp1255 windows-1255 x-cp1255",
    "cp1256": "cp1256 windows-1256 x-cp1256",
    "cp1257": "cp1257 windows-1257 x-cp1257",
    "cp1258": "cp1258 windows-1258 x-cp1258",
    "mac_cyrillic": "x-mac-cyrillic x-mac-ukrainian",
    # GBK and gb18030: GB18030 is GBK's superset and decodes it
    "gb18030": "chinese csgb2312 csiso58gb231280 gb2312 gb_2312 gb_2312-80 gbk iso-ir-58 x-gbk "
               "gb18030",
    # WHATWG's Big5 includes the HKSCS extension
    "big5hkscs": "big5 big5-hkscs cn-big5 csbig5 x-x-big5",
    "euc_jp": "cseucpkdfmtjapanese euc-jp x-euc-jp",
    "iso2022_jp": "csiso2022jp iso-2022-jp",
    # WHATWG's Shift_JIS and EUC-KR are Microsoft's extensions of them: code pages 932 and 949
    "cp932": "csshiftjis ms932 ms_kanji shift-jis shift_jis sjis windows-31j x-sjis",
    "cp949": "cseuckr csksc56011987 euc-kr iso-ir-149 korean ks_c_5601-1987 ks_c_5601-1989 "
             "ksc5601 ksc_5601 windows-949",
}
_CODEC_OF_LABEL = {label: codec for codec, labels in _CODEC_LABELS.items()
                   for label in labels.split()}
# the "replacement" encoding: browsers show one U+FFFD for the whole page rather than risk these
# (ISO-2022-KR/CN and HZ smuggle ASCII-looking escapes); here such a page counts as undeclared
_REPLACEMENT_LABELS = frozenset(
    "csiso2022kr hz-gb-2312 iso-2022-cn iso-2022-cn-ext iso-2022-kr replacement".split())
# WHATWG's indexes map the bytes 0x80-0x9F these code pages leave undefined to the C1 controls
_C1_FILLED_CODECS = frozenset({"cp874", "cp1250", "cp1251", "cp1252", "cp1253", "cp1254", "cp1255",
                               "cp1256", "cp1257", "cp1258"})


def decode_html(data: bytes) -> tuple[str | None, str]:
    """(text, Python codec used) of a page, or (None, why) when no encoding decodes it strictly.
    Never raises, whatever the bytes.

    Order: byte-order mark; the first <meta charset> / http-equiv charset in the first 4 KiB when
    it is a WHATWG label (any other label is ignored, as browsers do); UTF-8; GB18030.
    """
    for bom, encoding in ((codecs.BOM_UTF8, "utf-8"), (codecs.BOM_UTF16_LE, "utf-16-le"),
                          (codecs.BOM_UTF16_BE, "utf-16-be")):
        if data.startswith(bom):
            try:
                return data[len(bom):].decode(encoding), encoding
            except UnicodeDecodeError as exc:
                return None, f"{encoding} byte-order mark but invalid {encoding} ({exc.reason} at byte {exc.start})"
    declared, ignored = _declared_charset(data[:_CHARSET_SNIFF_BYTES])
    tried = []
    for encoding in dict.fromkeys(e for e in (declared, "utf-8", "gb18030") if e):
        try:
            return _decode(data, encoding), encoding
        except (UnicodeError, LookupError):  # the table holds text codecs only: this is a guard
            tried.append(encoding)
    note = f" ({ignored})" if ignored else ""
    return None, (f"bytes decode as none of {', '.join(tried)}{note}; re-save the page as UTF-8 or "
                  "declare its encoding in <meta charset>")


def _declared_charset(head: bytes) -> tuple[str | None, str | None]:
    """(Python codec, None) of the page's <meta> charset label; (None, why it was ignored) for a
    label that is no WHATWG text encoding; (None, None) when the page declares none."""
    match = _META_CHARSET.search(head)
    if not match:
        return None, None
    label = match.group(1).decode("ascii").lower()  # the pattern admits ASCII only
    if label in _REPLACEMENT_LABELS:
        return None, (f"<meta> charset {label!r} ignored: browsers refuse to decode it "
                      "(WHATWG 'replacement' encoding)")
    codec = _CODEC_OF_LABEL.get(label)
    if codec is None:
        return None, f"<meta> charset {label[:40]!r} ignored: not a WHATWG encoding label"
    return codec, None


def _decode(data: bytes, codec: str) -> str:
    if codec in _C1_FILLED_CODECS:
        return codecs.charmap_decode(data, "strict", _c1_filled_table(codec))[0]
    return data.decode(codec)


@cache
def _c1_filled_table(codec: str) -> str:
    """A Windows code page as a 256-character charmap table, WHATWG's way: its undefined bytes
    0x80-0x9F decode as the C1 controls U+0080-U+009F (Python's codec refuses them); its other
    undefined bytes stay undefined (U+FFFE, which charmap_decode refuses)."""
    chars = []
    for byte in range(256):
        try:
            chars.append(bytes([byte]).decode(codec))
        except UnicodeDecodeError:
            chars.append(chr(byte) if 0x80 <= byte <= 0x9F else "\ufffe")
    return "".join(chars)
