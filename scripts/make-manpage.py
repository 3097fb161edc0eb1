#!/usr/bin/env python3
"""Writes a man page (roff, section 1) for a swift-argument-parser command from its own help
(`--experimental-dump-help`), every subcommand with its arguments: scripts/make-deb.sh installs
them, so the pages never drift from the commands.
    scripts/make-manpage.py .build/release/equivd 0.5.0 > equivd.1
"""
import json
import subprocess
import sys


def roff(text):
    """Text safe in roff: backslashes doubled, a leading dot or quote escaped."""
    text = (text or "").replace("\\", "\\e").replace("-", "\\-")
    return "\n".join(("\\&" + l if l[:1] in (".", "'") else l) for l in text.splitlines())


def synopsis(arg):
    names = [("--" if n["kind"] == "long" else "-") + n["name"] for n in arg.get("names", [])]
    if arg["kind"] == "positional":
        return f"<{arg.get('valueName', 'value')}>" + ("..." if arg.get("isRepeating") else "")
    value = f" <{arg['valueName']}>" if arg["kind"] == "option" else ""
    return ", ".join(names) + value


def command_section(command, path, out):
    args = [a for a in command.get("arguments", []) if a.get("shouldDisplay", True)]
    out.append(f".SS {roff(' '.join(path))}")
    if command.get("abstract"):
        out.append(roff(command["abstract"]))
    if command.get("discussion"):
        out.append(".PP\n" + roff(command["discussion"]))
    for a in args:
        out.append(f".TP\n\\fB{roff(synopsis(a))}\\fR")
        text = a.get("abstract", "")
        if a.get("defaultValue"):
            text += f" (default: {a['defaultValue']})"
        if a.get("allValues"):
            text += " One of: " + ", ".join(a["allValues"]) + "."
        out.append(roff(text) or "\\&")
    for sub in command.get("subcommands", []):
        if sub["commandName"] != "help" and sub.get("shouldDisplay", True):
            command_section(sub, path + [sub["commandName"]], out)


def main():
    exe, version = sys.argv[1], sys.argv[2]
    info = json.loads(subprocess.run([exe, "--experimental-dump-help"], check=True, capture_output=True, text=True).stdout)["command"]
    name = info["commandName"]
    out = [f'.TH {name.upper()} 1 "" "{name} {version}" "User Commands"', ".SH NAME", f"{name} \\- {roff(info.get('abstract', ''))}",
           ".SH SYNOPSIS", f"\\fB{name}\\fR <subcommand> [options]", ".SH COMMANDS"]
    command_section(info, [name], out)
    out += [".SH FILES", "/etc/equivd/equivd.toml, /usr/share/equivd/Models, /usr/share/equivd/Samples, /run/equivd/equivd.sock",
            ".SH SEE ALSO", "equivd(1), equivctl(1); /usr/share/doc/equivd/README.md, operations.md, protocol.md, fleet.md"]
    print("\n".join(out))


if __name__ == "__main__":
    main()
