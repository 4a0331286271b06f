#!/usr/bin/env python3
"""make_bad_inputs.py: the hostile-input suite for dirgw, generated (no binaries are checked in).

Writes one DICOM Part-10 file per case plus manifest.json, which says for each case how it is
sent to the Storage SCP and what must happen. tests/integration/test_bad_input.py sends them
through a real dirgwd; tests/fuzz uses the small ones as seeds (--fuzz-seeds). See
docs/hostile-input.md for the table and the reasoning.

Each file is preamble + "DICM" + meta header + dataset. Over C-STORE only the dataset travels:
rawscu.py reads the meta header for the command's Affected SOP Class/Instance UIDs and the
transfer syntax to propose, and sends the bytes after it as they are. So a case's meta header
says what the sender *claims*, and its dataset is what it *sends*. Cases about the envelope itself
(preamble, meta header, zero bytes) are sent as --raw-dataset: the whole file goes as the dataset,
as a confused or hostile PACS would send it.

Expectations ("expect" in the manifest):
  outcome  stored | refused | association-rejected | context-rejected | aborted
  status   DIMSE status of the C-STORE response (stored/refused)
  reason   substring of the refusal reason dirgwd records (the catalog's refusals table)
  later    what issue 4's validation stage is expected to do with it, for stored cases

Python 3 standard library only. Deterministic: the same output on every run.
"""

import argparse
import hashlib
import json
import os
import struct
import sys
import zlib

IMPLICIT_LE = "1.2.840.10008.1.2"
EXPLICIT_LE = "1.2.840.10008.1.2.1"
DEFLATED = "1.2.840.10008.1.2.1.99"
EXPLICIT_BE = "1.2.840.10008.1.2.2"
JPEG_BASELINE = "1.2.840.10008.1.2.4.50"
RLE = "1.2.840.10008.1.2.5"
UNKNOWN_TS = "1.2.840.10008.1.2.1.98"  # retired/unsupported: no SCP accepts it
SECONDARY_CAPTURE = "1.2.840.10008.5.1.4.1.1.7"
CT_IMAGE = "1.2.840.10008.5.1.4.1.1.2"
IMPLEMENTATION_CLASS_UID = "2.25.153898137512406934710187405398118426311"

LONG_VRS = {"OB", "OD", "OF", "OL", "OV", "OW", "SQ", "SV", "UC", "UN", "UR", "UT", "UV"}
UNDEFINED = 0xFFFFFFFF

# The strings that must never reach a file name, a command line or an SQL statement.
HOSTILE_STRINGS = [
    ("traversal", b"../../etc/passwd"),
    ("slash", b"/"),
    ("backslash", b"\\"),
    ("nul", b"1.2\x00../../x"),
    # A newline followed by a forged log line: the log must not show it as its own line.
    ("control", b"A\x01\x1b[2J\r\nFAKE-LOG-LINE level=error"),
    ("shell", b"$(rm -rf /)"),
    # DCMTK removes spaces from UI values: the catalog keeps "1.2.3 4", DCMTK reads "1.2.34".
    ("space", b"1.2.3 4"),
    ("sql", b"'; DROP TABLE studies;--"),
]

# (name, tag, VR) of every identifier a stage might be tempted to put in a path or a query.
IDENTIFIERS = [
    ("patient_id", 0x00100020, "LO"),
    ("accession", 0x00080050, "SH"),
    ("study_id", 0x00200010, "SH"),
    ("study_uid", 0x0020000D, "UI"),
    ("series_uid", 0x0020000E, "UI"),
    ("sop_uid", 0x00080018, "UI"),
]

UID_NAMES = {0x0020000D: "Study Instance UID (0020,000D)", 0x0020000E: "Series Instance UID (0020,000E)",
             0x00080018: "SOP Instance UID (0008,0018)"}

# ---------------------------------------------------------------------------------------------
# A small DICOM encoder: elements, sequences, items, fragments, any length lie.

class E:
    """A data element. value: bytes, or a list of Item (SQ), or a list of bytes (fragments)."""

    def __init__(self, tag, vr, value=b"", undefined=False, length=None, pad=True):
        self.tag, self.vr, self.value = tag, vr, value
        self.undefined = undefined      # undefined length (SQ, UN, encapsulated pixel data)
        self.length = length            # a lie: written instead of the real length
        self.pad = pad                  # pad odd values to even


class Item:
    def __init__(self, elements, undefined=False, length=None):
        self.elements, self.undefined, self.length = elements, undefined, length


class Fragments(list):
    """Encapsulated pixel data: the first entry is the Basic Offset Table."""


def _pad(vr, v):
    if len(v) % 2 == 0:
        return v
    return v + (b"\0" if vr in ("UI", "OB", "UN") else b" ")


class Encoder:
    def __init__(self, explicit=True, big=False):
        self.explicit, self.big = explicit, big
        self.e = ">" if big else "<"

    def tag(self, tag):
        return struct.pack(self.e + "HH", tag >> 16, tag & 0xFFFF)

    def delim(self, tag, length=0):
        return self.tag(tag) + struct.pack(self.e + "I", length)

    def item(self, it):
        body = self.elements(it.elements)
        if it.undefined:
            return self.delim(0xFFFEE000, UNDEFINED) + body + self.delim(0xFFFEE00D)
        n = len(body) if it.length is None else it.length
        return self.delim(0xFFFEE000, n) + body

    def value(self, el):
        if isinstance(el.value, Fragments):
            return b"".join(self.delim(0xFFFEE000, len(f)) + f for f in el.value) + \
                self.delim(0xFFFEE0DD)
        if isinstance(el.value, list):
            body = b"".join(self.item(i) for i in el.value)
            return body + (self.delim(0xFFFEE0DD) if el.undefined else b"")
        return _pad(el.vr, el.value) if el.pad else el.value

    def element(self, el):
        v = self.value(el)
        n = UNDEFINED if el.undefined else len(v)
        if el.length is not None:
            n = el.length
        head = self.tag(el.tag)
        if self.explicit:
            if el.vr in LONG_VRS:
                head += el.vr.encode() + b"\0\0" + struct.pack(self.e + "I", n)
            else:
                head += el.vr.encode() + struct.pack(self.e + "H", n & 0xFFFF)
        else:
            head += struct.pack(self.e + "I", n)
        return head + v

    def elements(self, els):
        return b"".join(self.element(el) for el in els)


def encoder_for(ts):
    if ts == IMPLICIT_LE:
        return Encoder(explicit=False)
    if ts == EXPLICIT_BE:
        return Encoder(big=True)
    return Encoder()


def meta_header(sop_class, sop_instance, ts):
    enc = Encoder()
    els = [
        E(0x00020001, "OB", b"\x00\x01"),
        E(0x00020002, "UI", sop_class),
        E(0x00020003, "UI", sop_instance),
        E(0x00020010, "UI", ts.encode()),
        E(0x00020012, "UI", IMPLEMENTATION_CLASS_UID.encode()),
        E(0x00020013, "SH", b"DIRGW_BADINPUT"),
    ]
    body = enc.elements(els)
    return enc.element(E(0x00020000, "UL", struct.pack("<I", len(body)))) + body


def part10(dataset, sop_class, sop_instance, ts, preamble=bytes(128)):
    return preamble + b"DICM" + meta_header(sop_class, sop_instance, ts) + dataset


def even(data):
    """PS3.5 A.5: a deflated dataset of odd length gets one NUL pad byte. (DCMTK's SCP also
    refuses odd-length PDV fragments, so every dataset that is to arrive must be even.)"""
    return data + b"\0" if len(data) % 2 else data


def raw_deflate(data):
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    return even(c.compress(data) + c.flush())


# ---------------------------------------------------------------------------------------------
# The base object: a tiny Secondary Capture image of a made-up patient.

def uid_root(name):
    """A UUID-derived root (PS3.5 B.2) from the case name: unique, deterministic, 44 characters."""
    return "2.25." + str(int.from_bytes(hashlib.sha256(name.encode()).digest()[:16], "big"))


_LAST_OBJ = [None]  # the object a case was built from, for its UIDs in the manifest


class Obj:
    """The elements of one object, by tag, so that cases can replace, drop or add."""

    def __init__(self, name, ts=EXPLICIT_LE, pixels=b"\x80" * 64):
        _LAST_OBJ[0] = self
        root = uid_root(name)
        self.name, self.ts = name, ts
        self.sop_class = SECONDARY_CAPTURE.encode()
        self.sop_instance = (root + ".3").encode()
        self.els = {}
        for el in [
            E(0x00080016, "UI", self.sop_class),
            E(0x00080018, "UI", self.sop_instance),
            E(0x00080020, "DA", b"20240102"),
            E(0x00080030, "TM", b"101500"),
            E(0x00080050, "SH", b"BI" + hashlib.sha256(name.encode()).hexdigest()[:8].encode()),
            E(0x00080060, "CS", b"OT"),
            E(0x00080064, "CS", b"WSD"),
            E(0x00080090, "PN", b""),
            E(0x00100010, "PN", b"BADINPUT^CASE"),
            E(0x00100020, "LO", b"BADINPUT-" + hashlib.sha256(name.encode()).hexdigest()[:6].encode()),
            E(0x00100021, "LO", b"TEST"),  # Issuer of Patient ID: the test facility's
            E(0x00100030, "DA", b""),
            E(0x00100040, "CS", b"O"),
            E(0x0020000D, "UI", (root + ".1").encode()),
            E(0x0020000E, "UI", (root + ".2").encode()),
            E(0x00200010, "SH", b"1"),
            E(0x00200011, "IS", b"1"),
            E(0x00200013, "IS", b"1"),
            E(0x00200020, "CS", b""),
            E(0x00280002, "US", struct.pack("<H", 1)),
            E(0x00280004, "CS", b"MONOCHROME2"),
            E(0x00280010, "US", struct.pack("<H", 8)),
            E(0x00280011, "US", struct.pack("<H", 8)),
            E(0x00280100, "US", struct.pack("<H", 8)),
            E(0x00280101, "US", struct.pack("<H", 8)),
            E(0x00280102, "US", struct.pack("<H", 7)),
            E(0x00280103, "US", struct.pack("<H", 0)),
            E(0x7FE00010, "OB", pixels),
        ]:
            self.els[el.tag] = el

    def set(self, el):
        self.els[el.tag] = el
        if el.tag == 0x00080018 and isinstance(el.value, bytes):
            self.sop_instance = el.value
        if el.tag == 0x00080016 and isinstance(el.value, bytes):
            self.sop_class = el.value
        return self

    def drop(self, tag):
        self.els.pop(tag, None)
        return self

    def ordered(self):
        return [self.els[t] for t in sorted(self.els)]

    def dataset(self, ts=None):
        ts = ts or self.ts
        els = self.ordered()
        if ts == EXPLICIT_BE:
            # US values were packed little endian above; re-pack them for big endian.
            els = [E(e.tag, e.vr, struct.pack(">H", struct.unpack("<H", e.value)[0]))
                   if e.vr == "US" else e for e in els]
        data = encoder_for(ts).elements(els)
        return raw_deflate(data) if ts == DEFLATED else data

    def file(self, dataset=None, ts=None, preamble=bytes(128)):
        ts = ts or self.ts
        return part10(self.dataset(ts) if dataset is None else dataset, self.sop_class,
                      self.sop_instance, ts, preamble)


# ---------------------------------------------------------------------------------------------
# Nesting

def nested_undefined(depth, tag=0x00400275, vr="SQ", leaf=None):
    """depth levels of undefined-length SQ > undefined-length item, as one element."""
    leaf = leaf or []
    inner = leaf
    for _ in range(depth):
        inner = [E(tag, vr, [Item(inner, undefined=True)], undefined=True)]
    return inner[0]


def nested_undefined_bytes(depth, explicit=True, tag=0x00400275, vr="SQ", close=True):
    """The same, built iteratively as bytes (Python recursion would stop at ~1000 levels)."""
    g, e = tag >> 16, tag & 0xFFFF
    if explicit:
        open_seq = struct.pack("<HH", g, e) + vr.encode() + b"\0\0" + struct.pack("<I", UNDEFINED)
    else:
        open_seq = struct.pack("<HHI", g, e, UNDEFINED)
    open_item = struct.pack("<HHI", 0xFFFE, 0xE000, UNDEFINED)
    close_item = struct.pack("<HHI", 0xFFFE, 0xE00D, 0)
    close_seq = struct.pack("<HHI", 0xFFFE, 0xE0DD, 0)
    head = (open_seq + open_item) * depth
    return head + ((close_item + close_seq) * depth if close else b"")


def nested_defined_bytes(depth, tag=0x00400275):
    """depth levels of defined-length SQ > defined-length item, built from the inside out."""
    g, e = tag >> 16, tag & 0xFFFF
    body = b""
    for _ in range(depth):
        item = struct.pack("<HHI", 0xFFFE, 0xE000, len(body)) + body
        body = struct.pack("<HH", g, e) + b"SQ\0\0" + struct.pack("<I", len(item)) + item
    return body


def splice(obj, raw_after_tag, raw, ts=EXPLICIT_LE):
    """The object's dataset with raw bytes inserted after the elements with tag < raw_after_tag."""
    enc = encoder_for(ts)
    before = [e for e in obj.ordered() if e.tag < raw_after_tag]
    after = [e for e in obj.ordered() if e.tag >= raw_after_tag]
    return enc.elements(before) + raw + enc.elements(after)


# ---------------------------------------------------------------------------------------------
# The cases

MISMATCH_NOTE = ("the SCP compares the dataset's UIDs with the C-STORE request (from which DCMTK "
                 "writes the spool file's meta header) and answers 0xA900; before issue 17's "
                 "item 10 the pre-scan's meta/dataset check refused first, with 0xC000")


def refused(reason, status="0xC000"):
    return {"outcome": "refused", "status": status, "reason": reason}


def stored(later=None, finding=None):
    """finding: a validation code the policy stage must record for the object (issue 17)."""
    d = {"outcome": "stored", "status": "0x0000"}
    if later:
        d["later"] = later
    if finding:
        d["finding"] = finding
    return d


ABORTED = {"outcome": "aborted"}


class Suite:
    def __init__(self, small_only=False):
        self.cases = []
        self.small_only = small_only  # skip the cases that take seconds to build (fuzz seeds)

    def add(self, name, category, description, data, expect, send=None, **extra):
        c = {"name": name, "category": category, "description": description, "expect": expect,
             "send": send or {"tool": "rawscu"}, "data": data}
        obj = _LAST_OBJ[0]
        if obj is not None:
            # What the catalog would record: the dataset's UIDs, trailing NULs and spaces trimmed.
            for key, tag in (("sop_instance_uid", 0x00080018), ("study_uid", 0x0020000D)):
                el = obj.els.get(tag)
                if el is not None and isinstance(el.value, bytes):
                    c[key] = el.value.rstrip(b"\0 ").decode("latin-1")
        c.update(extra)
        self.cases.append(c)


def build(suite):
    s = suite

    # --- truncation anywhere ----------------------------------------------------------------
    o = Obj("trunc-base")
    full = o.dataset()
    pix_at = full.index(struct.pack("<HH", 0x7FE0, 0x0010))
    pn_at = full.index(struct.pack("<HH", 0x0010, 0x0010))
    pid_at = full.index(struct.pack("<HH", 0x0010, 0x0020))
    s.add("truncated-preamble", "truncation",
          "whole Part-10 file cut at byte 64 (inside the preamble), sent as the dataset",
          o.file()[:64], refused("command element (0000,0000) in the dataset"),
          {"tool": "rawscu", "raw": True})
    s.add("truncated-meta", "truncation",
          "whole Part-10 file cut at byte 150 (inside the meta header), sent as the dataset",
          o.file()[:150], refused("command element (0000,0000) in the dataset"),
          {"tool": "rawscu", "raw": True})
    s.add("truncated-dataset-empty", "truncation", "dataset cut at 0 bytes (nothing after the command)",
          o.file(dataset=b""), refused("dataset has no SOP Class UID"))
    # Every cut is at an even offset: DCMTK's SCP aborts on an odd-length PDV (see
    # odd-length-dataset), and the point here is the pre-scan's answer.
    s.add("truncated-first-element-header", "truncation", "dataset cut 2 bytes into its first element header",
          o.file(dataset=full[:2]), refused("file ends inside a data element header"))
    s.add("truncated-element-header", "truncation", "dataset cut inside the header of Patient ID",
          o.file(dataset=full[:pid_at + 6]), refused("file ends inside a data element header"))
    s.add("truncated-value", "truncation", "dataset cut inside the Patient's Name value",
          o.file(dataset=full[:pn_at + 12]), refused("value extends beyond the end of the file"))
    s.add("truncated-pixel-header", "truncation", "dataset cut inside the 12-byte Pixel Data header",
          o.file(dataset=full[:pix_at + 6]), refused("file ends inside a data element header"))
    s.add("truncated-pixel-data", "truncation", "dataset cut half-way through the pixel data",
          o.file(dataset=full[:pix_at + 12 + 30]), refused("value extends beyond the end of the file"))

    o = Obj("trunc-seq")
    o.set(E(0x00081115, "SQ", [Item([E(0x00081150, "UI", SECONDARY_CAPTURE.encode()),
                                       E(0x00081155, "UI", b"1.2.3.4.5.6")])]))
    full = o.dataset()
    sq_at = full.index(struct.pack("<HH", 0x0008, 0x1115))
    s.add("truncated-in-item", "truncation", "dataset cut inside an item of a defined-length sequence",
          o.file(dataset=full[:sq_at + 30]), refused("value extends beyond the end of the file"))
    o = Obj("trunc-undef-seq")
    o.set(E(0x00081115, "SQ", [Item([E(0x00081155, "UI", b"1.2.3.4.5.6")], undefined=True)],
            undefined=True))
    full = o.dataset()
    sq_at = full.index(struct.pack("<HH", 0x0008, 0x1115))
    s.add("truncated-undefined-sequence", "truncation",
          "dataset ends inside an undefined-length sequence, before its delimiter",
          o.file(dataset=full[:sq_at + 40]), refused("is not closed before the end of the file"))

    o = Obj("trunc-jpeg", ts=JPEG_BASELINE)
    o.set(E(0x7FE00010, "OB", Fragments([b"", b"\xff\xd8\xff\xe0" + b"\0" * 60 + b"\xff\xd9"]),
            undefined=True))
    full = o.dataset()
    s.add("truncated-encapsulated-fragment", "truncation",
          "JPEG transfer syntax, dataset cut inside the pixel data's first fragment",
          o.file(dataset=full[:len(full) - 30]),
          refused("encapsulated pixel data fragment extends beyond the end"))
    o = Obj("trunc-deflate", ts=DEFLATED)
    full = o.dataset()
    s.add("truncated-deflate-stream", "truncation", "deflated dataset cut in the middle of its deflate stream",
          o.file(dataset=full[:len(full) // 4 * 2]), refused("deflated dataset ends before the end of its deflate stream"))

    # --- lying lengths ----------------------------------------------------------------------
    o = Obj("lie-short-len")
    o.set(E(0x00100010, "PN", b"BADINPUT^CASE", length=0x7FF0))
    s.add("lying-length-beyond-end", "lying lengths", "Patient's Name claims 32752 bytes; 14 follow",
          o.file(), refused("extends beyond the end of the file"))
    o = Obj("lie-4g")
    o.set(E(0x7FE00010, "OB", b"\x80" * 64, length=0xFFFFFFF0))
    s.add("lying-length-4gib", "lying lengths", "Pixel Data claims 4 GiB - 16 bytes",
          o.file(), refused("value length exceeds max_object_size"))
    o = Obj("lie-undefined-text")
    o.set(E(0x0040A160, "UT", b"A report that claims to have no end", undefined=True))
    s.add("lying-undefined-length-on-text", "lying lengths", "Text Value (UT) with undefined length",
          o.file(), refused("undefined length on (0040,A160) with VR UT, which is not a sequence"))
    o = Obj("lie-item-len")
    o.set(E(0x00081115, "SQ", [Item([E(0x00081155, "UI", b"1.2.3.4.5.6")], length=400)]))
    s.add("lying-item-length", "lying lengths", "an item claims more bytes than its sequence holds",
          o.file(), refused("item extends beyond the end of its enclosing item"))
    o = Obj("lie-seq-len")
    o.set(E(0x00081115, "SQ", [Item([E(0x00081155, "UI", b"1.2.3.4.5.6")])], length=8))
    s.add("lying-sequence-length", "lying lengths",
          "a sequence claims 8 bytes, so its item's content crosses the sequence end",
          o.file(), refused("extends beyond the end of its enclosing item"))
    o = Obj("lie-odd")
    o.set(E(0x00080050, "SH", b"ODD", pad=False))
    o.set(E(0x00100020, "LO", b"ODD", pad=False))
    s.add("odd-length-values", "lying lengths",
          "Accession Number and Patient ID with odd lengths (3 each, so the dataset stays even): "
          "DCMTK and modalities accept them; the pre-scan warns",
          o.file(), stored("validation warns (value.odd_length); nothing to quarantine"))
    o = Obj("lie-odd-dataset")
    o.set(E(0x00100020, "LO", b"ODD", pad=False))
    s.add("odd-length-dataset", "lying lengths",
          "one odd-length value, so the dataset has an odd length: DCMTK's SCP refuses the odd PDV "
          "fragment and aborts the association before any answer",
          o.file(), dict(ABORTED, refusal="receive failed"),
          note="no C-STORE response: DCMTK fails the receive ('DIMSE: Odd Fragment Length'); "
               "dirgwd aborts and records a refusal row (code receive-failed)")
    o = Obj("lie-group-len")
    o.set(E(0x00080000, "UL", struct.pack("<I", 7)))
    s.add("lying-group-length", "lying lengths",
          "a retired dataset group length (0008,0000) that does not match its group",
          o.file(), stored("validation: group lengths are retired and ignored"))

    # --- nesting ----------------------------------------------------------------------------
    o = Obj("nest-100k")
    s.add("nested-100000-undefined", "nesting",
          "100 000 nested undefined-length sequences (DCMTK 3.6.7 overflows its stack on this)",
          o.file(dataset=splice(o, 0x00400275, nested_undefined_bytes(100000))),
          refused("sequence nesting deeper than max_depth"))
    o = Obj("nest-100k-defined")
    s.add("nested-100000-defined", "nesting", "100 000 nested defined-length sequences",
          o.file(dataset=splice(o, 0x00400275, nested_defined_bytes(100000))),
          refused("sequence nesting deeper than max_depth"))
    o = Obj("nest-100k-implicit", ts=IMPLICIT_LE)
    s.add("nested-100000-implicit-private", "nesting",
          "100 000 nested undefined-length private elements in implicit VR (no VR says SQ)",
          o.file(dataset=splice(o, 0x00090010, nested_undefined_bytes(100000, explicit=False,
                                                                      tag=0x00091010),
                                ts=IMPLICIT_LE)),
          refused("sequence nesting deeper than max_depth"))
    o = Obj("nest-100k-un")
    # An undefined-length UN holds implicit VR LE (PS3.5 6.2.2): the levels inside are implicit.
    un = struct.pack("<HH", 0x0009, 0x1010) + b"UN\0\0" + struct.pack("<I", UNDEFINED)
    inner = nested_undefined_bytes(99999, explicit=False, tag=0x00091010)
    raw = un + struct.pack("<HHI", 0xFFFE, 0xE000, UNDEFINED) + inner + \
        struct.pack("<HHIHHI", 0xFFFE, 0xE00D, 0, 0xFFFE, 0xE0DD, 0)
    s.add("nested-100000-un", "nesting",
          "100 000 nested undefined-length private elements: UN at the top, implicit VR inside",
          o.file(dataset=splice(o, 0x00090010, raw)), refused("sequence nesting deeper than max_depth"))
    o = Obj("nest-unterminated")
    s.add("unterminated-sequences", "nesting",
          "20 undefined-length sequences opened and never closed, at the end of the dataset",
          o.file(dataset=o.dataset() + nested_undefined_bytes(20, tag=0x7FE10010, vr="SQ",
                                                             close=False)),
          refused("is not closed before the end of the file"))
    o = Obj("nest-unterminated-item")
    o.set(E(0x00081115, "SQ", [Item([E(0x00081155, "UI", b"1.2.3.4.5.6")], undefined=True)],
            undefined=True))
    full = o.dataset()
    cut = full.index(struct.pack("<HHI", 0xFFFE, 0xE00D, 0))
    s.add("unterminated-item-then-data", "nesting",
          "an undefined-length item whose delimiters are missing: the rest of the dataset becomes its content",
          o.file(dataset=full[:cut] + full[cut + 16:]),
          refused("is not closed before the end of the file"))
    o = Obj("nest-32")
    o.set(nested_undefined(32))
    s.add("nested-32-levels", "nesting", "exactly 32 nested sequences: the limit, accepted",
          o.file(), stored("validation: allowed by the default max_depth"))
    o = Obj("nest-33")
    o.set(nested_undefined(33))
    s.add("nested-33-levels", "nesting", "33 nested sequences: one over max_depth",
          o.file(), refused("sequence nesting deeper than max_depth"))
    o = Obj("stray-seq-delim")
    s.add("stray-sequence-delimiter", "nesting", "a sequence delimitation item at the top level",
          o.file(dataset=splice(o, 0x00200000, struct.pack("<HHI", 0xFFFE, 0xE0DD, 0))),
          refused("sequence delimitation item outside an undefined-length sequence"))
    o = Obj("stray-item")
    s.add("stray-item", "nesting", "an item tag at the top level",
          o.file(dataset=splice(o, 0x00200000, struct.pack("<HHI", 0xFFFE, 0xE000, 0))),
          refused("item outside a sequence"))

    # --- huge counts ------------------------------------------------------------------------
    if not s.small_only:
        build_big_counts(s)

    # --- transfer syntaxes ------------------------------------------------------------------
    build_transfer_syntaxes(s)
    build_rest(s)


def build_big_counts(s):
    # Past max_items (1 000 000 by default: a whole-slide image has a fragment per tile).
    o = Obj("items-1m")
    items = struct.pack("<HHI", 0xFFFE, 0xE000, 0) * 1000001
    raw = struct.pack("<HH", 0x0008, 0x1115) + b"SQ\0\0" + struct.pack("<I", len(items)) + items
    s.add("items-1000001", "huge counts", "one sequence with 1 000 001 empty items (8 MB)",
          o.file(dataset=splice(o, 0x00081115, raw)), refused("more items than max_items"))
    o = Obj("fragments-1m", ts=JPEG_BASELINE)
    o.set(E(0x7FE00010, "OB", Fragments([b""] + [b"\xff\xd9"] * 1000001), undefined=True))
    s.add("fragments-1000001", "huge counts",
          "encapsulated pixel data with 1 000 001 fragments (10 MB)",
          o.file(), refused("more items than max_items"))
    o = Obj("elements-2m")
    chunks = []
    n = 0
    group = 0x0009
    while n < 2000001:
        count = min(0xF000, 2000001 - n)
        chunks.append((group, b"".join(struct.pack("<HH", group, el) + b"SH\0\0"
                                       for el in range(0x1000, 0x1000 + count))))
        n += count
        group += 2
    # Interleave the private groups with the public elements, in ascending tag order.
    enc = Encoder()
    parts = []
    pub = o.ordered()
    for g, blob in chunks:
        while pub and (pub[0].tag >> 16) < g:
            parts.append(enc.element(pub.pop(0)))
        parts.append(blob)
    parts += [enc.element(e) for e in pub]
    s.add("elements-2000001", "huge counts",
          "2 000 001 empty private elements (16 MB): DCMTK would spend ~300 MB building them",
          o.file(dataset=b"".join(parts)), refused("more data elements than max_elements"))


def build_transfer_syntaxes(s):
    o = Obj("ts-unknown")
    s.add("transfer-syntax-unknown", "transfer syntax",
          "proposes only 1.2.840.10008.1.2.1.98, which no one supports",
          o.file(ts=UNKNOWN_TS, dataset=o.dataset(EXPLICIT_LE)), {"outcome": "context-rejected"})
    o = Obj("ts-lie-explicit")
    s.add("transfer-syntax-lie-explicit", "transfer syntax",
          "explicit VR LE claimed, implicit VR LE sent",
          o.file(dataset=o.dataset(IMPLICIT_LE)), refused("invalid VR for (0008,0016)"))
    o = Obj("ts-lie-implicit", ts=IMPLICIT_LE)
    s.add("transfer-syntax-lie-implicit", "transfer syntax",
          "implicit VR LE claimed, explicit VR LE sent",
          o.file(dataset=o.dataset(EXPLICIT_LE)),
          refused("dataset looks like explicit VR but the transfer syntax is implicit VR"))
    o = Obj("ts-lie-be", ts=EXPLICIT_BE)
    s.add("transfer-syntax-lie-byte-order", "transfer syntax",
          "explicit VR big endian claimed, little endian sent",
          o.file(dataset=o.dataset(EXPLICIT_LE)), {"outcome": "context-rejected"},
          note="big endian (retired) is not offered by default (docs/ingest-dicom.md); the "
               "pre-scan's byte-order check is unit-tested")
    o = Obj("ts-lie-deflate", ts=DEFLATED)
    s.add("transfer-syntax-lie-deflate", "transfer syntax",
          "deflated claimed, plain explicit VR LE sent",
          o.file(dataset=o.dataset(EXPLICIT_LE)), refused("corrupt deflate stream"))
    o = Obj("ts-encaps-native")
    o.set(E(0x7FE00010, "OB", Fragments([b"", b"\xff\xd8\xff\xd9"]), undefined=True))
    s.add("transfer-syntax-encapsulated-in-native", "transfer syntax",
          "encapsulated pixel data under explicit VR LE",
          o.file(), refused("undefined-length (encapsulated) pixel data in a native transfer syntax"))
    if not s.small_only:
        build_deflate_bomb(s)
    for name, ts in (("implicit", IMPLICIT_LE), ("deflated", DEFLATED)):
        o = Obj("ts-valid-" + name, ts=ts)
        s.add("valid-" + name, "transfer syntax (controls)", f"a valid object in {name}",
              o.file(), stored())
    o = Obj("ts-valid-big-endian", ts=EXPLICIT_BE)
    s.add("valid-big-endian", "transfer syntax (controls)",
          "a valid object in explicit VR big endian (retired): not offered by default",
          o.file(), {"outcome": "context-rejected"})
    o = Obj("ts-jpeg-native", ts=JPEG_BASELINE)
    o.set(E(0x7FE00010, "OW", b"\x01\x02" * 256))
    s.add("transfer-syntax-lie-jpeg-native", "transfer syntax",
          "JPEG baseline claimed, native defined-length pixel data sent",
          o.file(), refused("native (defined-length) pixel data in an encapsulated transfer syntax"))
    o = Obj("ts-valid-jpeg", ts=JPEG_BASELINE)
    o.set(E(0x7FE00010, "OB", Fragments([b"", b"\xff\xd8\xff\xe0" + b"\0" * 60 + b"\xff\xd9"]),
            undefined=True))
    s.add("valid-jpeg-structure", "transfer syntax (controls)",
          "JPEG baseline with a structurally valid (not decodable) fragment",
          o.file(), stored("later stages that decode pixels must expect undecodable fragments"))


def build_deflate_bomb(s):
    # A deflate bomb: 20 private OB values of 30 MB of zeros each inflate to 600 MB (> 512 MiB).
    o = Obj("ts-deflate-bomb", ts=DEFLATED)
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    enc = Encoder()
    before = [e for e in o.ordered() if e.tag < 0x00090010]
    after = [e for e in o.ordered() if e.tag >= 0x00090010]
    out = [c.compress(enc.elements(before))]
    out.append(c.compress(enc.element(E(0x00090010, "LO", b"DIRGW BOMB"))))
    zeros = bytes(1 << 20)
    for i in range(20):
        out.append(c.compress(struct.pack("<HH", 0x0009, 0x1000 + i) + b"OB\0\0" +
                              struct.pack("<I", 30 << 20)))
        for _ in range(30):
            out.append(c.compress(zeros))
    out.append(c.compress(enc.elements(after)))
    out.append(c.flush())
    s.add("deflate-bomb", "transfer syntax",
          "a deflated dataset of ~600 KB that inflates to 600 MB",
          o.file(dataset=even(b"".join(out))), refused("inflated dataset larger than max_inflated_size"))


def build_rest(s):
    # --- what DCMTK itself cannot survive ------------------------------------------------------
    # DCMTK 3.6.7 reads any item of a Directory Record Sequence (0004,1220) as a directory record
    # and "corrects" its record type with verify(OFTrue), which throws std::out_of_range (and
    # ends the process) when the last value is longer than 16 bytes. Found by fuzz_folder.
    o = Obj("dirrec-type")
    o.set(E(0x00041220, "SQ", [Item([E(0x00041430, "CS", b"IMAGE AND A LONG TAIL\\IMAGE TOO LONG TAIL")])]))
    s.add("directory-record-type-too-long", "DCMTK crash",
          "a Directory Record Sequence item whose record type's last value is 19 bytes",
          o.file(), refused("value of (0004,1430) has a component longer than 16 bytes"))

    # --- envelope: meta header, preamble, zero bytes ----------------------------------------
    o = Obj("whole-file")
    s.add("whole-file-as-dataset", "meta header / preamble",
          "a whole Part-10 file (preamble, DICM, meta) sent as the dataset",
          o.file(), refused("command element (0000,0000) in the dataset"), {"tool": "rawscu", "raw": True})
    o = Obj("meta-in-dataset")
    s.add("meta-header-in-dataset", "meta header / preamble",
          "the meta group sent at the start of the dataset (no preamble)",
          o.file(dataset=meta_header(o.sop_class, o.sop_instance, EXPLICIT_LE) + o.dataset()),
          refused("file meta information group length is shorter than the meta elements"))
    o = Obj("no-preamble")
    s.add("missing-preamble", "meta header / preamble",
          "DICM + meta + dataset with no 128-byte preamble, sent as the dataset",
          o.file()[128:], refused("invalid VR for (4944,4D43)"), {"tool": "rawscu", "raw": True})
    s.add("zero-byte-file", "meta header / preamble", "a zero-byte file sent as the dataset",
          b"", refused("dataset has no SOP Class UID"), {"tool": "rawscu", "raw": True})
    s.add("not-dicom", "meta header / preamble", "a plain-text document sent as the dataset",
          b"This is a discharge summary in plain text, not a DICOM object.\n" * 20,
          refused("invalid VR for (6854,7369)"), {"tool": "rawscu", "raw": True})
    elf = (b"\x7fELF\x02\x01\x01" + bytes(9) + struct.pack("<HHI", 2, 0x3E, 1)).ljust(128, b"\0")
    pe = (b"MZ\x90\x00" + bytes(56) + struct.pack("<I", 0x40) + b"PE\0\0").ljust(128, b"\0")
    for kind, pre in (("elf", elf), ("pe", pe)):
        o = Obj("polyglot-" + kind)
        s.add(f"polyglot-{kind}-preamble", "meta header / preamble",
              f"CVE-2019-11687: a Part-10 file whose preamble is an {kind.upper()} header; over "
              "C-STORE the preamble does not travel, so the stored object must have a zero preamble",
              o.file(preamble=pre), stored("nothing: the stored preamble is dirgw's (zeros)"),
              check_zero_preamble=True)

    # --- invalid UIDs -----------------------------------------------------------------------
    o = Obj("uid-long-sop")
    long_uid = ("1.2." + "9" * 70).encode()
    o.set(E(0x00080018, "UI", long_uid))
    s.add("uid-too-long-sop-instance", "invalid UIDs",
          "SOP Instance UID of 74 characters in the command and the dataset",
          o.file(), ABORTED,
          note="DCMTK cannot parse the command ('Command Parse Failed: AffectedSOPInstanceUID') "
               "and dirgwd aborts the association; no refusal row is recorded")
    o = Obj("uid-long-study")
    o.set(E(0x0020000D, "UI", long_uid))
    s.add("uid-too-long-study", "invalid UIDs", "Study Instance UID of 74 characters",
          o.file(), refused("value of (0020,000D) longer than 64 bytes"))
    o = Obj("uid-mismatch")
    s.add("uid-mismatch-instance", "invalid UIDs",
          "the command names one SOP Instance UID, the dataset carries another",
          part10(o.dataset(), o.sop_class, (uid_root("uid-mismatch") + ".99").encode(), EXPLICIT_LE),
          refused("differ from the C-STORE request", "0xA900"), note=MISMATCH_NOTE)
    s.add("uid-mismatch-class", "invalid UIDs",
          "the command says CT Image Storage, the dataset says Secondary Capture",
          part10(o.dataset(), CT_IMAGE.encode(), o.sop_instance, EXPLICIT_LE),
          refused("differ from the C-STORE request", "0xA900"), note=MISMATCH_NOTE)
    o = Obj("un-encoded-uids")
    o.set(E(0x00080016, "UN", o.sop_class))
    o.set(E(0x00080018, "UN", o.sop_instance))
    s.add("un-encoded-uids", "invalid UIDs",
          "SOP Class and SOP Instance UID written with VR UN (as some RT exporters do): their "
          "values are the UIDs' text, read as UI (issue 17, item 5)",
          o.file(), stored())
    for tag, name, reason in ((0x0020000D, "study", "dataset has no Study Instance UID"),
                              (0x0020000E, "series", "dataset has no Series Instance UID"),
                              (0x00080018, "sop-instance", "dataset has no SOP Instance UID")):
        o = Obj("uid-missing-" + name)
        o.drop(tag)
        s.add(f"uid-missing-{name}", "invalid UIDs", f"no {name} UID in the dataset",
              o.file(), refused(reason))
    o = Obj("uid-empty-series")
    o.set(E(0x0020000E, "UI", b""))
    s.add("uid-empty-series", "invalid UIDs", "an empty Series Instance UID",
          o.file(), refused("dataset has no Series Instance UID"))
    o = Obj("uid-syntax")
    o.set(E(0x0020000D, "UI", b"abc.def.01.-5"))
    s.add("uid-bad-syntax-study", "invalid UIDs",
          "Study Instance UID with letters, a leading zero and a sign (structurally fine)",
          o.file(), refused("Study Instance UID (0020,000D) is not a UID"))
    o = Obj("uid-hostile-class")
    o.set(E(0x00080016, "UI", b"../../etc/passwd"))
    s.add("uid-hostile-sop-class", "invalid UIDs",
          "SOP Class UID '../../etc/passwd' in the proposed context, the command and the dataset",
          o.file(), {"outcome": "context-rejected"})
    o = Obj("dup-tag")
    ds = o.dataset()
    pid = Encoder().element(o.els[0x00100020])
    at = ds.index(pid)
    s.add("repeated-tag", "invalid UIDs", "Patient ID twice (the catalog and DCMTK could disagree)",
          o.file(dataset=ds[:at] + pid + ds[at:]), refused("data element (0010,0020) repeated"))
    o = Obj("dup-sop")
    ds = o.dataset()
    sop = Encoder().element(E(0x00080018, "UI", (uid_root("dup-sop") + ".4").encode()))
    at = ds.index(struct.pack("<HH", 0x0008, 0x0020))
    s.add("repeated-sop-instance-uid", "invalid UIDs",
          "two SOP Instance UIDs: the first matches the command, the second does not",
          o.file(dataset=ds[:at] + sop + ds[at:]), refused("data element (0008,0018) repeated"))
    o = Obj("order")
    ds = o.dataset()
    a = Encoder().element(o.els[0x00100010])
    b = Encoder().element(o.els[0x00100020])
    s.add("tags-out-of-order", "invalid UIDs", "Patient ID before Patient's Name",
          o.file(dataset=ds.replace(a + b, b + a)), refused("out of ascending tag order"))

    # --- hostile strings in every identifier ------------------------------------------------
    for ident, tag, vr in IDENTIFIERS:
        for sname, value in HOSTILE_STRINGS:
            o = Obj(f"hostile-{ident}-{sname}")
            o.set(E(tag, vr, value))
            expect = stored("issue 4 validation quarantines it (identifier syntax)")
            send = None
            note = None
            if vr == "UI":
                # Identifying UIDs with anything but digits and dots are refused at the door.
                expect = refused(UID_NAMES[tag] + " is not a UID")
            elif tag == 0x00080018 and any(c in value for c in b"\0 \r\n"):
                # DCMTK reads the command's UID up to a NUL and removes its spaces, CRs and LFs;
                # it writes the spool file's meta header from that, so meta and dataset disagree.
                expect = refused("SOP Instance UID (0008,0018) differs from the meta header's")
                note = ("DCMTK stops at the NUL and drops whitespace in the command's UID; the "
                        "meta header it writes then differs from the dataset")
            elif vr == "UI" and any(c in value for c in b" \r\n"):
                note = ("DCMTK drops the whitespace when it reads this UID, the catalog keeps it: "
                        "validation must judge the catalog's bytes (docs/hostile-input.md)")
            s.add(f"hostile-{ident}-{sname}", "hostile identifiers",
                  f"{ident} = {value!r}", o.file(), expect, send, note=note)

    # --- oversized elements -----------------------------------------------------------------
    o = Obj("big-private-text")
    o.set(E(0x00090010, "LO", b"DIRGW TEST"))
    o.set(E(0x00091001, "UT", b"A" * (2 << 20)))
    s.add("oversized-private-text", "oversized values",
          "a 2 MiB private UT value in explicit VR: the VR says text, so max_text_value applies",
          o.file(), refused("value of (0009,1001) longer than max_text_value"))
    o = Obj("big-private-implicit", ts=IMPLICIT_LE)
    o.set(E(0x00090010, "LO", b"DIRGW TEST"))
    o.set(E(0x00091001, "UT", b"A" * (2 << 20)))
    s.add("oversized-private-implicit", "oversized values",
          "a 2 MiB private value in implicit VR: no VR, and private tags are exempt by tag",
          o.file(), stored("validation quarantines it (private value over 1 MiB)",
                           finding="private.oversized"))
    o = Obj("big-private-ob")
    o.set(E(0x00090010, "LO", b"DIRGW TEST"))
    o.set(E(0x00091002, "OB", b"\x5a" * (6 << 20)))
    s.add("oversized-private-binary", "oversized values", "a 6 MiB private OB value",
          o.file(), stored("validation quarantines it (private value over 1 MiB)",
                           finding="private.oversized"))
    o = Obj("big-public-text")
    o.set(E(0x0040A160, "UT", b"B" * ((1 << 20) + 2)))
    s.add("oversized-public-text", "oversized values", "Text Value (UT) of 1 MiB + 2 bytes",
          o.file(), refused("value of (0040,A160) longer than max_text_value"))
    o = Obj("big-patient-id")
    o.set(E(0x00100020, "LO", b"P" * 65534))
    s.add("oversized-patient-id", "oversized values",
          "Patient ID (LO, 64 characters at most) of 65 534 bytes: structurally fine",
          o.file(), stored("issue 4 validation quarantines it (LO longer than 64)"))
    o = Obj("over-max-object")
    o.set(E(0x00090010, "LO", b"DIRGW TEST"))
    o.set(E(0x00091002, "OB", b"\x5a" * ((1 if s.small_only else 40) << 20)))
    s.add("over-max-object-size", "oversized values",
          "a 40 MiB object where max_object_size is 32 MiB (the test's configuration): dirgwd cuts "
          "the association while it is still sending, so spool/tmp never holds much more than "
          "the limit",
          o.file(), {"outcome": "aborted", "refusal": "C-STORE cut off: object larger than max_object_size",
                     "max_spool_tmp": (32 << 20) + (1 << 20)},
          # A patient sender: the cut sometimes takes ~100 s to reach it (docs/hostile-input.md).
          {"tool": "rawscu", "extra": ["--stall-after", str(31 << 20), "--stall-seconds", "2"],
           "timeout": 150},
          probe_spool_tmp=True,
          note="weakness: in about 1 try in 4 the sender is left blocked (dirgwd neither reads "
               "nor closes) for up to ~110 s before the association goes")

    # --- character sets ---------------------------------------------------------------------
    charsets = [
        ("iso2022-ir87", b"\\ISO 2022 IR 87",
         b"Yamada^Tarou=\x1b$B;3ED\x1b(B^\x1b$BB@O:\x1b(B=\x1b$B$d$^$@\x1b(B^\x1b$B$?$m$&\x1b(B"),
        ("gb18030", b"GB18030", "Wang^XiaoDong=\u738b^\u5c0f\u4e1c=".encode("gb18030")),
        ("utf8-ir192", b"ISO_IR 192", "B\u00e4dinput^\u00c7\u00e4s\u00e9=\u30c6\u30b9\u30c8".encode()),
        ("utf8-invalid", b"ISO_IR 192", b"BAD\xff\xfe\xc0\x80^UTF8"),
        ("unknown-term", b"ISO_IR 999", b"BADINPUT^CHARSET"),
        ("escape-without-declaration", b"", b"Yamada^\x1b$B;3ED\x1b(B"),
        ("latin1-undeclared", b"", b"M\xfcller^J\xf6rg"),
    ]
    findings = {"utf8-invalid": "text.invalid_utf8", "latin1-undeclared":
                "text.undeclared_characters"}
    for name, term, pn in charsets:
        o = Obj("charset-" + name)
        if term:
            o.set(E(0x00080005, "CS", term))
        o.set(E(0x00100010, "PN", pn))
        s.add("charset-" + name, "character sets", f"Specific Character Set {term!r}",
              o.file(), stored(f"validation quarantines it ({findings[name]})"
                               if name in findings else
                               "validation/coercion decide; bytes are kept as received",
                               finding=findings.get(name)),
              send={"tool": "storescu"} if name in ("iso2022-ir87", "gb18030", "utf8-ir192") else None)

    # --- the association and the stream -----------------------------------------------------
    o = Obj("assoc-unknown-caller")
    s.add("unknown-calling-ae", "association", "calling AE title not in allowed_callers",
          o.file(), {"outcome": "association-rejected", "result": 1, "source": 1, "assoc_reason": 3,
                     "refusal": "calling AE title not in allowed_callers"},
          {"tool": "rawscu", "calling": "INTRUDER"})
    s.add("hostile-calling-ae", "association", "calling AE title \"'; DROP TABLE\" (16 characters)",
          o.file(), {"outcome": "association-rejected", "result": 1, "source": 1, "assoc_reason": 3,
                     "refusal": "calling AE title not in allowed_callers"},
          {"tool": "rawscu", "calling": "'; DROP TABLE --"})
    s.add("wrong-called-ae", "association", "called AE title is not ours",
          o.file(), {"outcome": "association-rejected", "result": 1, "source": 1, "assoc_reason": 7,
                     "refusal": "called AE title is not"},
          {"tool": "rawscu", "called": "../../etc"})
    for kind in ("type", "length", "pdv"):
        s.add(f"broken-pdu-{kind}", "association", f"a malformed PDU ({kind}) after the association",
              o.file(), ABORTED, {"tool": "rawscu", "extra": ["--broken-pdu", kind]})
    o = Obj("stream-abort")
    o.set(E(0x00090010, "LO", b"DIRGW TEST"))
    o.set(E(0x00091002, "OB", b"\x33" * (1 << 20)))
    s.add("abort-mid-dataset", "file still being written",
          "half the dataset in complete PDVs (none marked last), then A-ABORT",
          o.file(), ABORTED, {"tool": "abort", "how": "a-abort"})
    o = Obj("stream-close")
    o.set(E(0x00090010, "LO", b"DIRGW TEST"))
    o.set(E(0x00091002, "OB", b"\x34" * (1 << 20)))
    s.add("close-mid-pdu", "file still being written",
          "the connection closes in the middle of a P-DATA-TF PDU (the sender died)",
          o.file(), ABORTED, {"tool": "abort", "how": "close"})
    o = Obj("stream-stall-close")
    o.set(E(0x00090010, "LO", b"DIRGW TEST"))
    o.set(E(0x00091002, "OB", b"\x35" * (1 << 20)))
    s.add("stall-then-close-mid-pdu", "file still being written",
          "half a PDU, 2 s of silence, then the connection closes",
          o.file(), ABORTED, {"tool": "abort", "how": "stall-close"})
    o = Obj("stream-stall-timeout")
    s.add("stall-between-pdus-beyond-dimse-timeout", "file still being written",
          "after the command, 8 s of silence before the dataset: longer than dimse_timeout "
          "(5 s in the test's configuration), so dirgwd aborts",
          o.file(), ABORTED, {"tool": "rawscu", "stall_after_command": 8})
    o = Obj("stream-stall-short")
    s.add("stall-between-pdus-within-dimse-timeout", "file still being written",
          "after the command, 2 s of silence, then the dataset: accepted",
          o.file(), stored(), {"tool": "rawscu", "stall_after_command": 2})
    o = Obj("stream-stall-mid-pdu")
    s.add("stall-mid-pdu-8s", "file still being written",
          "8 s of silence in the middle of a P-DATA-TF PDU: aborted, nothing stored, because "
          "dimse_timeout (5 s here) also bounds silence inside a PDU (DCMTK's socket time-outs "
          "are set from it)",
          o.file(), ABORTED, {"tool": "rawscu", "extra": ["--stall-after", "300", "--stall-seconds", "8"]})
    o = Obj("stream-no-release")
    s.add("no-release", "association", "stores, then closes without A-RELEASE",
          o.file(), stored(), {"tool": "rawscu", "extra": ["--no-release"]})
    o = Obj("stream-big-pdu")
    o.set(E(0x00090010, "LO", b"DIRGW TEST"))
    o.set(E(0x00091002, "OB", b"\x36" * (1 << 20)))
    s.add("oversized-pdus", "association",
          "a 1 MiB dataset in P-DATA-TF PDUs of 1 MiB, far above the 64 KiB dirgwd announced",
          o.file(), ABORTED, {"tool": "rawscu", "extra": ["--pdu-size", str(1 << 20)]})
    o = Obj("stream-tiny-pdu")
    s.add("tiny-pdus", "association", "the dataset in 8-byte PDUs (2 data bytes each)",
          o.file(), stored(), {"tool": "rawscu", "extra": ["--pdu-size", "8"]})


def write_suite(out_dir, max_seed_size=None, quiet=False, small_only=False):
    suite = Suite(small_only)
    build(suite)
    os.makedirs(out_dir, exist_ok=True)
    manifest = []
    for c in suite.cases:
        data = c.pop("data")
        if max_seed_size is not None:
            if len(data) <= max_seed_size:
                with open(os.path.join(out_dir, c["name"] + ".dcm"), "wb") as f:
                    f.write(data)
            continue
        path = os.path.join(out_dir, c["name"] + ".dcm")
        with open(path, "wb") as f:
            f.write(data)
        c["file"] = os.path.basename(path)
        c["size"] = len(data)
        manifest.append(c)
    if max_seed_size is None:
        with open(os.path.join(out_dir, "manifest.json"), "w") as f:
            json.dump(manifest, f, indent=1)
    if not quiet:
        print(f"{len(suite.cases)} cases written to {out_dir}")
    return manifest


def write_valid_seeds(out_dir):
    """Small valid objects, one per transfer syntax and structure, for the fuzzers."""
    os.makedirs(out_dir, exist_ok=True)
    seeds = {}
    for name, ts in (("explicit-le", EXPLICIT_LE), ("implicit-le", IMPLICIT_LE),
                     ("explicit-be", EXPLICIT_BE), ("deflated", DEFLATED)):
        seeds["valid-" + name] = Obj("seed-" + name, ts=ts).file()
    o = Obj("seed-jpeg", ts=JPEG_BASELINE)
    o.set(E(0x7FE00010, "OB", Fragments([b"", b"\xff\xd8\xff\xe0\0\0\xff\xd9", b"\xff\xd9"]),
            undefined=True))
    seeds["valid-jpeg-fragments"] = o.file()
    o = Obj("seed-rle", ts=RLE)
    o.set(E(0x7FE00010, "OB", Fragments([struct.pack("<I", 0), struct.pack("<16I", 1, 64, *([0] * 14))
                                         + b"\x3f" + b"\x80" * 64]), undefined=True))
    seeds["valid-rle"] = o.file()
    o = Obj("seed-sequences")
    o.set(E(0x00081115, "SQ", [Item([E(0x00081150, "UI", SECONDARY_CAPTURE.encode()),
                                       E(0x00081155, "UI", b"1.2.3.4.5.6")]),
                               Item([E(0x00081155, "UI", b"1.2.3.4.5.7")], undefined=True)],
            undefined=True))
    o.set(nested_undefined(3))
    o.set(E(0x00090010, "LO", b"DIRGW TEST"))
    o.set(E(0x00091010, "UN", [Item([E(0x00081155, "UI", b"1.2.3")], undefined=True)],
            undefined=True))
    seeds["valid-sequences"] = o.file()
    o = Obj("seed-implicit-seq", ts=IMPLICIT_LE)
    o.set(E(0x00081115, "SQ", [Item([E(0x00081155, "UI", b"1.2.3.4.5.6")])]))
    seeds["valid-implicit-sequence"] = o.file()
    o = Obj("seed-charset")
    o.set(E(0x00080005, "CS", b"ISO_IR 192"))
    o.set(E(0x00100010, "PN", "B\u00e4d^\u30c6\u30b9\u30c8".encode()))
    seeds["valid-utf8"] = o.file()
    for name, data in seeds.items():
        with open(os.path.join(out_dir, name + ".dcm"), "wb") as f:
            f.write(data)
    return len(seeds)


def expected_text(c):
    e = c["expect"]
    out = e["outcome"]
    if "status" in e:
        out += f" {e['status']}"
    if "reason" in e:
        out += f" \"{e['reason']}\""
    if "assoc_reason" in e:
        out += f" (result {e['result']}, source {e['source']}, reason {e['assoc_reason']})"
    if e.get("refusal") and e["outcome"] != "association-rejected":
        out += f"; refusal \"{e['refusal']}\""
    if "later" in e:
        out += f"; later: {e['later']}"
    if c.get("note"):
        out += f" — {c['note']}"
    return out


def markdown_cell(text):
    return text.replace("|", "\\|").replace("\n", " ")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", help="write every case and manifest.json here")
    ap.add_argument("--fuzz-seeds", metavar="DIR",
                    help="write small valid objects and the cases up to --max-seed-size bytes here")
    ap.add_argument("--max-seed-size", type=int, default=64 * 1024)
    ap.add_argument("--small-only", action="store_true",
                    help="with --fuzz-seeds: skip building the multi-megabyte cases (faster)")
    ap.add_argument("--list", action="store_true", help="print the case table (name, expected)")
    ap.add_argument("--markdown", action="store_true",
                    help="print the case table as Markdown (docs/hostile-input.md)")
    args = ap.parse_args(argv)
    if not (args.out or args.fuzz_seeds or args.list or args.markdown):
        ap.error("give --out, --fuzz-seeds, --list or --markdown")
    if args.markdown:
        suite = Suite()
        build(suite)
        category = None
        for c in suite.cases:
            if c["category"] != category:
                category = c["category"]
                print(f"\n**{category}**\n")
                print("| case | what is sent | expected |")
                print("|---|---|---|")
            print(f"| `{c['name']}` | {markdown_cell(c['description'])} | "
                  f"{markdown_cell(expected_text(c))} |")
        print(f"\n{len(suite.cases)} cases.")
    if args.list:
        suite = Suite()
        build(suite)
        for c in suite.cases:
            print(f"{c['name']:45} {expected_text(c)}")
        print(f"{len(suite.cases)} cases")
    if args.out:
        write_suite(args.out)
    if args.fuzz_seeds:
        n = write_valid_seeds(args.fuzz_seeds)
        write_suite(args.fuzz_seeds, max_seed_size=args.max_seed_size, quiet=True,
                    small_only=args.small_only)
        print(f"fuzz seeds written to {args.fuzz_seeds} ({n} valid objects plus the small cases)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
