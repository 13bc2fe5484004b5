"""jinja2 environments for the report's templates (`reports/templates/`).

HTML templates (`*.html.j2`) are autoescaped: every name that comes from the results store (scene,
method, run id, paths) is text, never markup. LaTeX templates (`*.tex.j2`) use `((* *))` for blocks
and `((( )))` for values, so that LaTeX's braces need no escaping, and every value passes through the
`tex` filter explicitly (or `tex_label` for a metric label; Table 1's caption arrives escaped, made by
`reports.build.Caption.tex`).
"""

from __future__ import annotations

import datetime as _dt
import math
import re
from functools import lru_cache
from pathlib import Path

TEMPLATES = Path(__file__).resolve().parent / "templates"

_TEX_SPECIAL = {
    "\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_", "{": r"\{",
    "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}", "<": r"\textless{}", ">": r"\textgreater{}",
    "\u00d7": r"$\times$", "\u2013": "--", "\u2014": "---",
}
_TEX_PATTERN = re.compile("|".join(re.escape(key) for key in _TEX_SPECIAL))


def tex_escape(value) -> str:
    """Plain text as LaTeX source (special characters escaped, non-ASCII letters dropped to `?`)."""
    text = _TEX_PATTERN.sub(lambda m: _TEX_SPECIAL[m.group(0)], str(value))
    return "".join(ch if ord(ch) < 128 else "?" for ch in text)


_TEX_MATH_LABEL = re.compile(r"\$[A-Za-z0-9 ^_{}/+\-.,()]*\$")
_HTML_LABEL_TAGS = re.compile(r"&lt;(/?)(sup|sub)&gt;")


def tex_label(label: str) -> str:
    """A metric's LaTeX label (`label_tex`): a simple math expression such as `$Q^{AB/F}$` is kept as
    it is; anything else is escaped as plain text (labels come from the results store)."""
    text = str(label)
    depth = 0
    for ch in text:
        depth += {"{": 1, "}": -1}.get(ch, 0)
        if depth < 0:
            break
    return text if _TEX_MATH_LABEL.fullmatch(text) and depth == 0 else tex_escape(text)


def html_label(label: str):
    """A metric's HTML label (`label_html`) as markup: escaped, then `<sup>`/`<sub>` restored, so
    `Q<sup>AB/F</sup>` renders as intended and nothing else from the results store becomes markup."""
    from markupsafe import Markup, escape

    return Markup(_HTML_LABEL_TAGS.sub(r"<\1\2>", str(escape(str(label)))))


def tex_unit(unit: str) -> str:
    """` dB` -> `\\,dB`."""
    unit = str(unit or "")
    if not unit:
        return ""
    return (r"\," if unit.startswith(" ") else "") + tex_escape(unit.strip())


def tex_cell(cell) -> str:
    """A Table 1 cell (`reports.table1.Cell`) as LaTeX: `\\textbf{21.24\\,dB}`, `\\underline{0.8140}`."""
    if cell.method is None:
        return ""
    missing = cell.value is None or math.isnan(cell.value)
    body = "--" if missing else tex_escape(cell.number) + tex_unit(getattr(cell, "unit", ""))
    if cell.mark == "best":
        return rf"\textbf{{{body}}}"
    if cell.mark == "second":
        return rf"\underline{{{body}}}"
    return body


def number(value, digits: int = 4) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "\u2013"
    return f"{value:.{digits}f}"


def parameter_count(value) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "not recorded"
    return "0 (no learned parameters)" if int(value) == 0 else f"{int(value):,}"


def p_value(value) -> str:
    if value is None or not math.isfinite(value):
        return "\u2013"
    return f"{value:.2e}" if value < 1e-3 else f"{value:.4f}"


def utc_time(seconds) -> str:
    if seconds is None or (isinstance(seconds, float) and not math.isfinite(seconds)):
        return "\u2013"
    return _dt.datetime.fromtimestamp(float(seconds), _dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def sort_key(value) -> str:
    """The `data-sort` attribute of a numeric cell: the number, or empty (sorts last) when missing."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return ""
    return repr(float(value))


@lru_cache(maxsize=None)
def html_environment():
    import jinja2

    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(TEMPLATES)), autoescape=True,
                             undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True,
                             keep_trailing_newline=True)
    env.filters.update(number=number, p_value=p_value, parameter_count=parameter_count, utc_time=utc_time,
                       sort_key=sort_key, html_label=html_label)
    return env


@lru_cache(maxsize=None)
def tex_environment():
    import jinja2

    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(TEMPLATES)), autoescape=False,
                             undefined=jinja2.StrictUndefined, block_start_string="((*",
                             block_end_string="*))", variable_start_string="(((", variable_end_string=")))",
                             comment_start_string="((=", comment_end_string="=))", trim_blocks=True,
                             lstrip_blocks=True, keep_trailing_newline=True)
    env.filters.update(tex=tex_escape, tex_cell=tex_cell, tex_label=tex_label)
    return env


def render_html(template: str, **context) -> str:
    return html_environment().get_template(template).render(**context)


def render_tex(template: str, **context) -> str:
    return tex_environment().get_template(template).render(**context)
