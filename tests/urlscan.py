"""Static scan of an HTML page for URLs it would load from another host.

The proof behind hil.htmlreport's promise that the Allure 2 single-file report calls
out to no server: a scan of the page (markup, inline and ``data:`` scripts and
styles, nested ``data:`` documents such as SVG icons, and the embedded report data
that the page renders as HTML). tests/integration/test_htmlreport.py runs it on small
pages and on a real report. It errs towards reporting.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import urllib.parse
from collections.abc import Generator, Iterator
from html.parser import HTMLParser

_MAX_DEPTH = 12

# Absolute URLs on a network scheme. Special schemes parse an authority even without
# the slashes ("https:evil.example"), so the slashes are optional here.
_NETWORK_SCHEME_RE = re.compile(r"^(?:https?|wss?|ftp):", re.IGNORECASE)
_PROTOCOL_RELATIVE_RE = re.compile(r"^[/\\]{2}")
# A URL inside free text (CSS, JS string values).
_URL_IN_TEXT_RE = re.compile(
    r"(?:\b(?:https?|wss?|ftp):(?=[^\s\"'`<>()\\])|(?<![\w:/\\])//(?=[\w-]+(?:\.[\w-]+)+))"
    r"[^\s\"'`<>()\\]*",
    re.IGNORECASE,
)
_DATA_URL_RE = re.compile(
    r"data:(?P<type>[\w.+-]+/[\w.+-]+)?(?P<params>(?:\s*;\s*[\w.+-]+(?:=[^;,\s\"'`]*)?)*),",
    re.IGNORECASE,
)
_CSS_COMMENT_RE = re.compile(r"/\*.*?(?:\*/|$)", re.DOTALL)
_CSS_URL_RE = re.compile(
    r"\burl\(\s*(?:\"(?P<dq>(?:[^\"\\]|\\.)*)\"|'(?P<sq>(?:[^'\\]|\\.)*)'|(?P<bare>[^)\s\"']*))\s*\)",
    re.IGNORECASE | re.DOTALL,
)
_CSS_IMPORT_RE = re.compile(
    r"@import\s+(?:\"(?P<dq>(?:[^\"\\]|\\.)*)\"|'(?P<sq>(?:[^'\\]|\\.)*)')", re.IGNORECASE
)
_CSS_ESCAPE_RE = re.compile(r"\\(?:([0-9a-fA-F]{1,6})\s?|(.))", re.DOTALL)
_JS_ESCAPE_RE = re.compile(
    r"\\(?:u\{([0-9a-fA-F]+)\}|u([0-9a-fA-F]{4})|x([0-9a-fA-F]{2})|(\r\n|[\s\S]))"
)
_REPORT_DATA_RE = re.compile(r"\bd\(\s*'([^'\\]*)'\s*,\s*'([A-Za-z0-9+/=\s]*)'\s*\)")
_META_REFRESH_URL_RE = re.compile(r"url\s*=\s*['\"]?([^'\"]+)", re.IGNORECASE)

# XML namespace names are identifiers that browsers never dereference.
_NAMESPACE_URIS = frozenset(
    {
        "http://www.w3.org/2000/svg",
        "http://www.w3.org/1999/xhtml",
        "http://www.w3.org/1999/xlink",
        "http://www.w3.org/XML/1998/namespace",
        "http://www.w3.org/2000/xmlns/",
        "http://www.w3.org/1998/Math/MathML",
        "http://www.w3.org/1999/02/22-rdf-syntax-ns#",
        "http://purl.org/dc/elements/1.1/",
        "http://creativecommons.org/ns#",
        "http://www.inkscape.org/namespaces/inkscape",
        "http://sodipodi.sourceforge.net/DTD/sodipodi-0.dtd",
    }
)
# Link relations that never fetch anything by themselves.
_INERT_LINK_RELS = frozenset(
    {
        "alternate",
        "author",
        "bookmark",
        "canonical",
        "external",
        "help",
        "license",
        "me",
        "next",
        "nofollow",
        "noopener",
        "noreferrer",
        "opener",
        "prev",
        "search",
        "shortlink",
        "tag",
    }
)
# Attributes whose value is fetched, on whatever element (strict: also legacy ones).
_LOADING_ATTRIBUTES = frozenset(
    {"src", "poster", "background", "lowsrc", "dynsrc", "ping", "manifest", "icon"}
)
_MARKUP_TYPES = frozenset(
    {"text/html", "image/svg+xml", "application/xhtml+xml", "application/xml", "text/xml"}
)
_CSS_TYPES = frozenset({"text/css"})
_JS_TYPES = frozenset(
    {"text/javascript", "application/javascript", "application/ecmascript", "text/ecmascript"}
)
# JS: code right before a string literal that makes a leading URL inert.
_JS_INERT_BEFORE_RE = re.compile(
    r"(?:\bnew\s+URL\s*\([^()]*,|\bconsole\s*\.\s*\w+\s*\()\s*$"  # URL base; printed text
)
# Text right before a URL inside a string value that makes it a load: an attribute or
# url( or @import. A link (<a href=...>) and a namespace (xmlns=...) are not.
_LOADING_PREFIX_RE = re.compile(r"(?:=|\(|@import)\s*[\"'`]?\s*$", re.IGNORECASE)
_INERT_PREFIX_RE = re.compile(
    r"(?:<(?:a|area)\b[^<>]*\bhref|\bxmlns(?::[\w-]+)?|\brdf:(?:resource|about))\s*=\s*[\"'`]?\s*$",
    re.IGNORECASE,
)
_JS_REGEX_KEYWORDS = frozenset(
    {
        "return",
        "typeof",
        "instanceof",
        "in",
        "of",
        "new",
        "delete",
        "void",
        "throw",
        "case",
        "do",
        "else",
        "yield",
        "await",
    }
)
_JS_SPECIAL_RE = re.compile(r"[\"'`/{}]")
_JS_DQ_RE = re.compile(r'"[^"\\\n]*(?:\\[\s\S][^"\\\n]*)*"')
_JS_SQ_RE = re.compile(r"'[^'\\\n]*(?:\\[\s\S][^'\\\n]*)*'")
_JS_TEMPLATE_CHUNK_RE = re.compile(r"[^`\\$]*(?:(?:\\[\s\S]|\$(?!\{))[^`\\$]*)*")
_JS_REGEX_RE = re.compile(r"/(?![*/])(?:[^/\\\[\n]|\\.|\[(?:[^\]\\\n]|\\.)*\])+/[a-z]*")
_JS_IDENT_TAIL_RE = re.compile(r"[\w$]+$")

_Token = tuple[str, int, int, bool]
_TokenGenerator = Generator[_Token, None, tuple[int, bool]]


def is_external_url(url: str) -> bool:
    """True for a URL that names another host: http(s), ws(s), ftp, or protocol-relative."""
    value = re.sub(r"[\t\n\r]", "", url).strip(" \f\v\x00")
    return bool(_NETWORK_SCHEME_RE.match(value) or _PROTOCOL_RELATIVE_RE.match(value))


def embedded_report_data(html: str) -> dict[str, bytes]:
    """The report files an Allure 2 single-file page carries (``d('data/..json', 'base64')``)."""
    data: dict[str, bytes] = {}
    for match in _REPORT_DATA_RE.finditer(html):
        try:
            data[match.group(1)] = base64.b64decode(re.sub(r"\s", "", match.group(2)))
        except (binascii.Error, ValueError):
            continue
    return data


def find_external_urls(html: str) -> list[str]:
    """External URLs the page would load when opened, in order of first appearance.

    Looks at loading attributes (``src``, ``srcset``, ``href`` except on links, ``poster``,
    ``data``, ``background``, event handlers, meta refresh, SVG ``url(...)`` paints),
    inline and ``data:`` scripts and styles, CSS ``url()`` and ``@import``, and string
    literals in scripts: a literal that *is* a URL (what ``fetch``, ``XMLHttpRequest``,
    ``import()``, an iframe ``src`` would get) or an attribute/``url(``/``@import`` inside
    one. Skipped as inert: comments, XML namespace names, ``<a href>`` links, URLs inside
    prose strings, ``console.*`` messages and the base argument of ``new URL``. ``data:``
    documents (SVG, CSS, JS, HTML) and HTML in the embedded report data are scanned too.
    It is a static check: it errs towards reporting.
    """
    scanner = _Scanner()
    scanner.markup(html, 0)
    for name, payload in embedded_report_data(html).items():
        scanner.report_file(name, payload)
    return list(scanner.found)


class _Scanner:
    def __init__(self) -> None:
        self.found: dict[str, None] = {}

    def add(self, url: str) -> None:
        self.found.setdefault(url.strip(), None)

    # -- one URL in a loading position --------------------------------------------------
    def consider(self, value: str, depth: int) -> None:
        url = value.strip()
        lowered = url.lower()
        if is_external_url(url):
            self.add(url)
        elif lowered.startswith("data:"):
            match = _DATA_URL_RE.match(url)
            if match:
                self.data_url(match, url[match.end() :], depth)
        elif lowered.startswith("javascript:"):
            self.js(urllib.parse.unquote(url[len("javascript:") :]), depth + 1)

    def data_url(self, match: re.Match[str], payload: str, depth: int) -> None:
        if depth >= _MAX_DEPTH:
            return
        media = (match.group("type") or "text/plain").lower()
        params = match.group("params") or ""
        is_base64 = bool(re.search(r";\s*base64\s*$", params, re.IGNORECASE))
        scan_as = (
            "markup"
            if media in _MARKUP_TYPES
            else "css"
            if media in _CSS_TYPES
            else "js"
            if media in _JS_TYPES
            else "text"
            if media.startswith("text/")
            else ""
        )
        if not scan_as:
            return  # images, fonts, binary: they cannot load anything
        try:
            raw = (
                base64.b64decode(re.sub(r"\s", "", payload) + "=" * (-len(payload) % 4))
                if is_base64
                else urllib.parse.unquote_to_bytes(payload)
            )
        except (binascii.Error, ValueError):
            return
        text = raw.decode("utf-8", errors="replace")
        if scan_as == "markup":
            self.markup(text, depth + 1)
        elif scan_as == "css":
            self.css(text, depth + 1)
        elif scan_as == "js":
            self.js(text, depth + 1)
        else:
            for url in _URL_IN_TEXT_RE.finditer(text):
                self.add(url.group(0))

    def data_urls_in(self, text: str, depth: int) -> str:
        """Scan each ``data:`` URL inside ``text``; return ``text`` with their payloads cut."""
        if "data:" not in text.lower():
            return text
        pieces: list[str] = []
        pos = 0
        for match in _DATA_URL_RE.finditer(text):
            if match.start() < pos:
                continue
            before = text[match.start() - 1] if match.start() else ""
            if before in "\"'`":
                end = text.find(before, match.end())
            elif before == "(":
                end = text.find(")", match.end())
            elif before == "":
                end = len(text)
            else:
                space = re.compile(r"\s").search(text, match.end())
                end = space.start() if space else len(text)
            end = len(text) if end < 0 else end
            self.data_url(match, text[match.end() : end], depth)
            pieces.append(text[pos : match.end()])
            pos = end
        pieces.append(text[pos:])
        return "".join(pieces)

    # -- documents ----------------------------------------------------------------------
    def markup(self, text: str, depth: int) -> None:
        if depth >= _MAX_DEPTH:
            return
        parser = _MarkupScanner(self, depth)
        parser.feed(text)
        parser.close()

    def css(self, text: str, depth: int) -> None:
        if depth >= _MAX_DEPTH:
            return
        text = _CSS_COMMENT_RE.sub(" ", text)

        def one(match: re.Match[str]) -> str:
            value = match.group("dq") or match.group("sq") or match.groupdict().get("bare") or ""
            self.consider(_css_unescape(value), depth)
            return " "

        rest = _CSS_IMPORT_RE.sub(one, _CSS_URL_RE.sub(one, text))
        # Anything else in a style sheet that names another host (image-set strings...).
        for url in _URL_IN_TEXT_RE.finditer(self.data_urls_in(rest, depth)):
            self.add(url.group(0))

    def js(self, src: str, depth: int) -> None:
        if depth >= _MAX_DEPTH:
            return
        code_start = 0
        for kind, start, end, first in _js_tokens(src):
            self.js_code(src[code_start:start])
            code_start = end
            if kind in ("str", "tpl"):
                before = src[max(0, start - 200) : start - 1] if first else ""
                self.js_string(_js_unescape(src[start:end]), before, depth)
            # comments and regex literals are inert
        self.js_code(src[code_start:])

    def js_code(self, code: str) -> None:
        # Outside strings, comments and regex literals a URL cannot be a value; one found
        # here means the tokenizer lost its way, so report it rather than miss it.
        for url in _URL_IN_TEXT_RE.finditer(code):
            if url.group(0).startswith("//"):
                continue  # a line comment the tokenizer did not see, or division
            self.add(url.group(0))

    def js_string(self, value: str, code_before: str, depth: int) -> None:
        value = self.data_urls_in(value, depth)
        for match in _URL_IN_TEXT_RE.finditer(value):
            url = match.group(0)
            if url in _NAMESPACE_URIS:
                continue
            prefix = value[: match.start()]
            if not prefix.strip():
                if code_before and _JS_INERT_BEFORE_RE.search(code_before):
                    continue
                self.add(url)
            elif _LOADING_PREFIX_RE.search(prefix) and not _INERT_PREFIX_RE.search(prefix):
                self.add(url)
            # else: a URL in prose ("see https://..."), which nothing loads

    # -- embedded report files ----------------------------------------------------------
    def report_file(self, name: str, payload: bytes) -> None:
        lowered = name.lower()
        text = payload.decode("utf-8", errors="replace")
        if lowered.endswith((".html", ".htm", ".xhtml", ".svg")):
            self.markup(text, 1)
        elif lowered.endswith(".css"):
            self.css(text, 1)
        elif lowered.endswith((".js", ".mjs")):
            self.js(text, 1)
        elif lowered.endswith(".json"):
            try:
                document = json.loads(text)
            except ValueError:
                return
            for html in _values_of(document, "descriptionHtml"):
                self.markup(html, 1)


def _values_of(node: object, key: str) -> Iterator[str]:
    if isinstance(node, dict):
        for name, value in node.items():
            if name == key and isinstance(value, str):
                yield value
            else:
                yield from _values_of(value, key)
    elif isinstance(node, list):
        for item in node:
            yield from _values_of(item, key)


class _MarkupScanner(HTMLParser):
    def __init__(self, scanner: _Scanner, depth: int) -> None:
        super().__init__(convert_charrefs=True)
        self.scanner = scanner
        self.depth = depth
        self.raw_tag = ""
        self.raw_text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.attributes(tag, attrs)
        if tag in ("script", "style"):
            self.raw_tag = tag
            self.raw_text = []

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.attributes(tag, attrs)

    def handle_data(self, data: str) -> None:
        if self.raw_tag:
            self.raw_text.append(data)

    def handle_endtag(self, tag: str) -> None:
        if self.raw_tag and tag == self.raw_tag:
            text = "".join(self.raw_text)
            if tag == "script":
                self.scanner.js(text, self.depth + 1)
            else:
                self.scanner.css(text, self.depth + 1)
            self.raw_tag = ""
            self.raw_text = []

    def close(self) -> None:
        super().close()
        if self.raw_tag:  # unterminated <script>/<style>
            self.handle_endtag(self.raw_tag)

    def attributes(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {name.lower(): value or "" for name, value in attrs}
        scanner, depth = self.scanner, self.depth
        for name, value in values.items():
            if not value:
                continue
            local = name.rsplit(":", 1)[-1]
            if name == "style":
                scanner.css(value, depth + 1)
            elif name.startswith("on"):
                scanner.js(value, depth + 1)
            elif name == "srcdoc":
                scanner.markup(value, depth + 1)
            elif local == "srcset" or name == "imagesrcset":
                for url in _srcset_urls(value):
                    scanner.consider(url, depth)
            elif local in _LOADING_ATTRIBUTES or (local == "data" and tag == "object"):
                scanner.consider(value, depth)
            elif local == "href":
                self.href(tag, values, value)
            elif name == "content" and values.get("http-equiv", "").lower() == "refresh":
                match = _META_REFRESH_URL_RE.search(value)
                if match:
                    scanner.consider(match.group(1), depth)
            elif "url(" in value.lower():
                scanner.css(value, depth + 1)  # SVG fill/filter/mask/clip-path: url(...)

    def href(self, tag: str, values: dict[str, str], value: str) -> None:
        if tag in ("a", "area"):
            if value.strip().lower().startswith("javascript:"):
                self.scanner.consider(value, self.depth)
            return  # a link: followed only when clicked
        if tag == "link":
            rels = set(values.get("rel", "").lower().split())
            if rels and rels <= _INERT_LINK_RELS:
                return
        self.scanner.consider(value, self.depth)


def _srcset_urls(srcset: str) -> Iterator[str]:
    """URLs of a ``srcset`` (HTML's parsing rules: a URL may itself contain commas)."""
    pos, length = 0, len(srcset)
    while pos < length:
        while pos < length and (srcset[pos].isspace() or srcset[pos] == ","):
            pos += 1
        start = pos
        while pos < length and not srcset[pos].isspace():
            pos += 1
        url = srcset[start:pos]
        if url.endswith(","):
            url = url.rstrip(",")
        else:
            depth = 0
            while pos < length:  # descriptors up to the next top-level comma
                char = srcset[pos]
                depth += char == "("
                depth -= char == ")"
                pos += 1
                if char == "," and depth <= 0:
                    break
        if url:
            yield url


def _css_unescape(value: str) -> str:
    def one(match: re.Match[str]) -> str:
        if match.group(1):
            code = int(match.group(1), 16)
            return chr(code) if 0 < code <= 0x10FFFF else "\ufffd"
        return "" if match.group(2) == "\n" else match.group(2)

    return _CSS_ESCAPE_RE.sub(one, value)


def _js_unescape(value: str) -> str:
    simple = {"n": "\n", "t": "\t", "r": "\r", "b": "\b", "f": "\f", "v": "\v", "0": "\0"}

    def one(match: re.Match[str]) -> str:
        hex_code = match.group(1) or match.group(2) or match.group(3)
        if hex_code:
            code = int(hex_code, 16)
            return chr(code) if code <= 0x10FFFF else "\ufffd"
        char = match.group(4)
        if char in ("\n", "\r\n", "\r", "\u2028", "\u2029"):
            return ""  # line continuation
        return simple.get(char, char)

    return _JS_ESCAPE_RE.sub(one, value) if "\\" in value else value


def _js_tokens(src: str) -> Generator[_Token, None, None]:
    """Strings, template chunks, comments and regex literals of JavaScript source.

    Yields ``(kind, start, end, first)``: kind is ``str``, ``tpl``, ``comment`` or
    ``regex``; for strings and template chunks the span is the content without quotes,
    and ``first`` is true for a string and for the first chunk of a template. A light
    tokenizer: a ``/`` is a regex after an operator or keyword, division after a value.
    """
    length = len(src)
    pos = 0
    braces = 0
    template_braces: list[int] = []  # brace depth at each open ${ ... }
    after_value = False
    resume_template = False
    while pos < length or resume_template:
        if resume_template:
            resume_template = False
            pos, closed = yield from _template_chunks(src, pos, first=False)
            after_value = True
            if not closed:
                template_braces.append(braces)
            continue
        match = _JS_SPECIAL_RE.search(src, pos)
        if match is None:
            break
        at = match.start()
        code = src[pos:at].rstrip()
        if code:
            tail = code[-1]
            if tail in ")]":
                after_value = True
            elif tail.isalnum() or tail in "_$":
                word = _JS_IDENT_TAIL_RE.search(code)
                after_value = not (word and word.group(0) in _JS_REGEX_KEYWORDS)
            else:
                after_value = False
        char = src[at]
        if char in "\"'":
            quoted = (_JS_DQ_RE if char == '"' else _JS_SQ_RE).match(src, at)
            end = quoted.end() if quoted else _line_end(src, at + 1)
            yield ("str", at + 1, end - 1 if quoted else end, True)
            pos, after_value = end, True
        elif char == "`":
            pos, closed = yield from _template_chunks(src, at + 1, first=True)
            after_value = True
            if not closed:
                template_braces.append(braces)
        elif char == "{":
            braces += 1
            pos, after_value = at + 1, False
        elif char == "}":
            if template_braces and template_braces[-1] == braces:
                template_braces.pop()
                pos, resume_template = at + 1, True
            else:
                braces -= 1
                pos, after_value = at + 1, False
        else:  # "/"
            nxt = src[at + 1 : at + 2]
            if nxt == "/":
                end = _line_end(src, at)
                yield ("comment", at, end, False)
                pos = end
            elif nxt == "*":
                close = src.find("*/", at + 2)
                end = length if close < 0 else close + 2
                yield ("comment", at, end, False)
                pos = end
            elif not after_value and (regex := _JS_REGEX_RE.match(src, at)):
                yield ("regex", at, regex.end(), False)
                pos, after_value = regex.end(), True
            else:
                pos, after_value = at + 1, False


def _template_chunks(src: str, pos: int, *, first: bool) -> _TokenGenerator:
    """Yield one template chunk from ``pos``; return (next position, template closed)."""
    chunk = _JS_TEMPLATE_CHUNK_RE.match(src, pos)
    end = chunk.end() if chunk else pos
    yield ("tpl", pos, end, first)
    if src.startswith("${", end):
        return end + 2, False
    return min(end + 1, len(src)), True


def _line_end(src: str, pos: int) -> int:
    end = src.find("\n", pos)
    return len(src) if end < 0 else end
