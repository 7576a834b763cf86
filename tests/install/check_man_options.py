#!/usr/bin/env python3
"""Every option --help lists is in the man page, so the two cannot drift.

For `qcowkit --help` and each `qcowkit VERB --help`, `nbdkit PLUGIN --help`
and `nbdkit --filter=FILTER null --help`, collects the options the help
text names (-x, --long, key=) and the defaults it states ("default 64M"),
and checks each appears in the right part of the POD source: a verb's
options in its "=head2 qcowkit VERB" section, the plugin's and filter's in
their pages. Prints every miss, then fails if there was one.

usage: check_man_options.py --pod-dir DIR --qcowkit BIN --plugin SO --filter SO
"""
import argparse
import re
import subprocess
import sys

FLAG = re.compile(r"(?<![\w-])(--?[A-Za-z][\w-]*)")
DEFAULT_AFTER = re.compile(r"([\w.-]+) \(default\)")
KEY = re.compile(r"(?<![\w-])([a-z][a-z0-9_-]*)=")
DEFAULT = re.compile(r"\bdefault:?\s+([^\s,;:)]+?)[.,;:)]?(?=[\s,;:)]|$)")


def run(cmd):
    out = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if out.returncode != 0:
        sys.exit(f"{' '.join(cmd)} exited with {out.returncode}:\n{out.stdout}")
    return out.stdout


def plain(pod):
    """POD text without formatting codes: B<-r> -> -r, C<< x >> -> x."""
    prev = None
    while prev != pod:
        prev = pod
        pod = re.sub(r"[A-Z]<<+\s+(.*?)\s+>>+", r"\1", pod, flags=re.S)
        pod = re.sub(r"[A-Z]<([^<>]*)>", r"\1", pod)
    return pod


def sections(pod, level):
    """{heading: text} for each =headN of the given level."""
    parts = re.split(rf"^=head{level}\s+(.*)$", pod, flags=re.M)
    out = {}
    for i in range(1, len(parts), 2):
        body = re.split(r"^=head[1-%d]\s" % level, parts[i + 1], flags=re.M)[0]
        out[plain(parts[i]).strip()] = body
    return out


def wanted(help_text):
    """The option spellings and default values a help text names."""
    names = set(FLAG.findall(help_text)) | {k + "=" for k in KEY.findall(help_text)}
    defaults = set(DEFAULT.findall(help_text)) | set(DEFAULT_AFTER.findall(help_text))
    return names, defaults


def contains(text, name):
    if name.endswith("="):
        return re.search(rf"(?<![\w-]){re.escape(name)}", text) is not None
    return re.search(rf"(?<![\w-]){re.escape(name)}(?![\w-])", text) is not None


misses = []
VERBOSE = False


def check(where, help_text, text, also_defaults=True):
    names, defaults = wanted(help_text)
    if VERBOSE:
        print(f"{where}: options {sorted(names)} defaults {sorted(defaults)}")
    for name in sorted(names):
        if not contains(text, name):
            misses.append(f"{where}: option {name} is in --help but not in the man page")
    if also_defaults:
        for value in sorted(defaults):
            if value not in text:
                misses.append(f"{where}: default '{value}' is in --help but not in the man page")
    return len(names)


def help_block(text, kind, name):
    """The part of `nbdkit ... --help` that a plugin or filter printed."""
    lines = text.splitlines()
    start = next(i for i, l in enumerate(lines) if l.startswith(f"{kind}: {name}"))
    end = start + 1
    while end < len(lines) and lines[end].strip() and not re.match(r"^(plugin|filter): ", lines[end]):
        end += 1
    # Skip the "name (longname)", "(path)" and description lines.
    return "\n".join(lines[start + 3:end])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--pod-dir", required=True)
    ap.add_argument("--qcowkit", required=True)
    ap.add_argument("--plugin", required=True)
    ap.add_argument("--filter", action="append", default=[])
    ap.add_argument("-v", "--verbose", action="store_true")
    args = ap.parse_args()
    global VERBOSE
    VERBOSE = args.verbose

    def pod(name):
        with open(f"{args.pod_dir}/{name}.pod", encoding="utf-8") as f:
            return f.read()

    counted = 0
    # qcowkit: the verbs, the global options, then each verb's options.
    qpod = pod("qcowkit")
    verbs_section = sections(qpod, 2)
    top = run([args.qcowkit, "--help"])
    verbs = re.findall(r"^  ([a-z0-9]+)\s", top, flags=re.M)
    if not verbs:
        sys.exit("qcowkit --help lists no verbs")
    global_text = plain(sections(qpod, 1).get("GLOBAL OPTIONS", ""))
    counted += check("qcowkit", "\n".join(l for l in top.splitlines() if not l.startswith("  ")),
                     global_text + plain(sections(qpod, 1).get("SYNOPSIS", "")))
    for verb in verbs:
        section = verbs_section.get(f"qcowkit {verb}")
        if section is None:
            misses.append(f"qcowkit {verb}: no '=head2 qcowkit {verb}' section in qcowkit.pod")
            continue
        counted += check(f"qcowkit {verb}", run([args.qcowkit, verb, "--help"]), plain(section))

    # The plugin and the filters: their pages' PARAMETERS sections.
    plugin_help = run(["nbdkit", args.plugin, "--help"])
    name = re.search(r"^plugin: (\S+)", plugin_help, flags=re.M).group(1)
    ppod = sections(pod(f"nbdkit-{name}-plugin"), 1)
    counted += check(f"nbdkit-{name}-plugin", help_block(plugin_help, "plugin", name),
                     plain(ppod.get("PARAMETERS", "")))
    for filt in args.filter:
        filter_help = run(["nbdkit", f"--filter={filt}", "null", "--help"])
        name = re.search(r"^filter: (\S+)", filter_help, flags=re.M).group(1)
        fpod = sections(pod(f"nbdkit-{name}-filter"), 1)
        counted += check(f"nbdkit-{name}-filter", help_block(filter_help, "filter", name),
                         plain(fpod.get("PARAMETERS", "")))

    for miss in misses:
        print(miss)
    if misses:
        sys.exit(f"{len(misses)} option(s) or default(s) missing from the man pages")
    print(f"ok: {counted} options of {len(verbs)} verbs, the plugin and "
          f"{len(args.filter)} filter(s) are in the man pages")


if __name__ == "__main__":
    main()
