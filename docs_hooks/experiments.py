"""MkDocs hook: the Experiments page is built from ``experiments/*/RESULTS.md``.

Each experiment's RESULTS.md is included under its own heading level (its headings
shifted one level down), its image links are rewritten to
``experiments/<name>/<file>``, and those image files are added to the site.
"""

import glob
import os
import re

from mkdocs.structure.files import File

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PAGE = "experiments.md"
IMAGE = re.compile(r"(!\[[^\]]*\]\()([^)\s]+\.png)(\))")


def _experiments():
    return sorted(os.path.dirname(p) for p in glob.glob(os.path.join(ROOT, "experiments", "*",
                                                                       "RESULTS.md")))


def on_files(files, config):
    for folder in _experiments():
        for png in sorted(glob.glob(os.path.join(folder, "*.png"))):
            rel = os.path.relpath(png, ROOT).replace(os.sep, "/")
            files.append(File(rel, ROOT, config["site_dir"], config["use_directory_urls"]))
    return files


def on_page_markdown(markdown, page, config, files):
    if page.file.src_uri != PAGE:
        return markdown
    parts = [markdown.rstrip(), ""]
    for folder in _experiments():
        name = os.path.basename(folder)
        with open(os.path.join(folder, "RESULTS.md"), encoding="utf-8") as fh:
            text = fh.read()
        text = re.sub(r"^(#+) ", r"#\1 ", text, flags=re.M)
        text = IMAGE.sub(lambda m: f"{m.group(1)}experiments/{name}/{m.group(2)}{m.group(3)}",
                         text)
        parts += [f"## {name}", "", f"`python experiments/{name}/run.py`; its RESULTS.md:",
                  "", text, ""]
    return "\n".join(parts)
