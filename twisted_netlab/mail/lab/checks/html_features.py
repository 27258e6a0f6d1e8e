"""
Which of caniemail's features an HTML body uses -- elements, attributes,
CSS properties, values, units, functions, selectors and at-rules -- found
by parsing: the HTML with lxml (libxml2's HTML parser), the CSS with
tinycss2, selectors matched to elements with cssselect.  No pattern is
matched against markup.

Counting follows Mailpit (internal/htmlcheck): a feature of an element (a
tag, an attribute, a CSS property in its C{style} or in a C{<style>} rule
that selects it) counts once for each element that has it; a selector
feature, an at-rule or a comment counts once for each time it is written.
Mailpit inlines the C{<style>} rules with premailer first; here a rule is
matched to the elements it selects instead, and a rule that selects none
(inside C{@media}, with C{:hover}, or for elements not in this message)
counts once, so that a property used only in a media query is still seen.

L{scan} is the entry point; L{DETECTABLE} lists every slug it can report.
"""

from __future__ import annotations

import functools
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from html.parser import HTMLParser
from typing import Any
from urllib.parse import urlsplit

import tinycss2  # type: ignore[import-untyped]
from cssselect import HTMLTranslator, SelectorError
from lxml import etree


def _words(text: str) -> list[str]:
    return text.split()


# --- HTML: elements and attributes -------------------------------------------

TAG_FEATURES: dict[str, str] = {
    **{
        tag: f"html-{tag}"
        for tag in _words(
            "abbr acronym address audio base bdi blockquote code del dfn dialog "
            "div form hr img link marquee meter object p picture pre progress "
            "rp rt ruby select small span strike strong style svg table "
            "textarea video wbr"
        )
    },
    "embed": "html-object",
    "map": "html-image-maps",
    **{f"h{n}": "html-h1-h6" for n in range(1, 7)},
    **{tag: "html-lists" for tag in ("ul", "ol", "dl")},
    **{
        tag: "html-semantics"
        for tag in _words(
            "article aside details figcaption figure footer header main mark "
            "nav section summary time"
        )
    },
}

ATTRIBUTE_FEATURES: dict[str, str] = {
    **{
        name: f"html-{name}"
        for name in _words(
            "align valign width height background cellpadding cellspacing dir "
            "lang hidden required popover target role srcset aria-describedby "
            "aria-hidden aria-label aria-labelledby aria-live"
        )
    },
    "sizes": "html-srcset",
    "loading": "html-loading-attribute",
    "usemap": "html-image-maps",
    "inert": "css-inert-attribute",
    # presentational attributes that stand for CSS (as Mailpit maps them)
    "bgcolor": "css-background-color",
    "border": "css-border",
}

INPUT_TYPES = frozenset({"checkbox", "hidden", "radio", "reset", "submit", "text"})
BUTTON_TYPES = frozenset({"reset", "submit"})
COLOR_SCHEME_META = frozenset({"color-scheme", "supported-color-schemes"})
JSON_SCRIPT_TYPES = frozenset({"application/ld+json", "application/json"})

IMAGE_EXTENSIONS: dict[str, str] = {
    "apng": "image-apng",
    "avif": "image-avif",
    "bmp": "image-bmp",
    "gif": "image-gif",
    "hdr": "image-hdr",
    "heif": "image-heif",
    "heic": "image-heif",
    "ico": "image-ico",
    "jpg": "image-jpg",
    "jpeg": "image-jpg",
    "mp4": "image-mp4",
    "png": "image-png",
    "svg": "image-svg",
    "tif": "image-tiff",
    "tiff": "image-tiff",
    "webp": "image-webp",
}

#: not a caniemail feature: Mailpit's own warning for <script>
SCRIPT = "html-script"

# --- CSS: properties, values, selectors, at-rules ------------------------------


def _each(names: str, slug: str) -> dict[str, tuple[str, ...]]:
    return {name: (slug,) for name in names.split()}


def _sides(prefix: str) -> str:
    return " ".join(f"{prefix}-{side}" for side in ("top", "right", "bottom", "left"))


#: a property (vendor prefix removed) -> the features it is
PROPERTY_FEATURES: dict[str, tuple[str, ...]] = {
    **{
        name: (f"css-{name}",)
        for name in _words(
            "accent-color align-items animation aspect-ratio backdrop-filter "
            "background background-blend-mode background-clip background-color "
            "background-image background-origin background-position "
            "background-repeat background-size border-collapse border-image "
            "border-spacing box-shadow box-sizing caption-side clear clip-path "
            "color-scheme column-count cursor direction display empty-cells filter "
            "flex-direction flex-wrap float font font-kerning font-size "
            "font-size-adjust font-stretch font-weight height hyphenate-character "
            "hyphenate-limit-chars hyphens justify-content letter-spacing "
            "line-height list-style list-style-image list-style-position "
            "list-style-type mask-image max-block-size max-height max-inline-size "
            "max-width min-block-size min-height min-inline-size min-width "
            "mix-blend-mode object-fit object-position opacity orphans "
            "outline-offset overflow-wrap position resize shape-margin "
            "shape-outside tab-size table-layout text-align text-align-last "
            "text-decoration text-decoration-color text-decoration-line "
            "text-decoration-skip-ink text-decoration-style "
            "text-decoration-thickness text-emphasis text-emphasis-position "
            "text-indent text-justify text-orientation text-overflow text-shadow "
            "text-transform text-underline-offset text-underline-position "
            "text-wrap transform user-select vertical-align visibility "
            "white-space white-space-collapse widows width word-break "
            "word-spacing word-wrap writing-mode z-index"
        )
    },
    **_each(
        "border border-width border-style border-color "
        + _sides("border")
        + " "
        + " ".join(
            f"border-{side}-{part}"
            for side in ("top", "right", "bottom", "left")
            for part in ("width", "style", "color")
        ),
        "css-border",
    ),
    **_each(
        "border-radius "
        + " ".join(
            f"border-{v}-{h}-radius"
            for v in ("top", "bottom")
            for h in ("left", "right")
        ),
        "css-border-radius",
    ),
    **_each(
        " ".join(
            f"border-{a}-{b}-radius" for a in ("start", "end") for b in ("start", "end")
        ),
        "css-border-radius-logical",
    ),
    **_each("border-inline border-block", "css-border-inline-block"),
    **_each(
        " ".join(
            f"border-{axis}-{part}"
            for axis in ("inline", "block")
            for part in ("color", "style", "width", "start", "end")
        ),
        "css-border-inline-block-individual",
    ),
    **_each(
        " ".join(
            f"border-{axis}-{edge}-{part}"
            for axis in ("inline", "block")
            for edge in ("start", "end")
            for part in ("color", "style", "width")
        ),
        "css-border-inline-block-longhand",
    ),
    **_each("margin " + _sides("margin"), "css-margin"),
    **_each("padding " + _sides("padding"), "css-padding"),
    **_each("margin-block-start margin-block-end", "css-margin-block-start-end"),
    **_each("margin-inline-start margin-inline-end", "css-margin-inline-start-end"),
    **_each("margin-inline margin-block", "css-margin-inline-block"),
    **_each("padding-block-start padding-block-end", "css-padding-block-start-end"),
    **_each("padding-inline-start padding-inline-end", "css-padding-inline-start-end"),
    **_each("padding-inline padding-block", "css-padding-inline-block"),
    **_each("block-size", "css-block-inline-size"),
    "inline-size": ("css-inline-size", "css-block-inline-size"),
    **_each(
        "columns column-fill column-rule column-rule-color column-rule-style "
        "column-rule-width column-span column-width",
        "css-column-layout-properties",
    ),
    "column-count": ("css-column-count", "css-column-layout-properties"),
    "column-gap": ("css-gap", "css-column-layout-properties"),
    **_each("gap row-gap", "css-gap"),
    **_each(
        "grid-template grid-template-areas grid-template-columns grid-template-rows",
        "css-grid-template",
    ),
    **_each("left right top bottom", "css-left-right-top-bottom"),
    **_each(
        "inset inset-block inset-inline inset-block-start inset-block-end "
        "inset-inline-start inset-inline-end",
        "css-inset",
    ),
    **_each(
        "overflow overflow-x overflow-y overflow-block overflow-inline",
        "css-overflow",
    ),
    **_each("outline outline-color outline-style outline-width", "css-outline"),
    **_each(
        "animation-name animation-duration animation-timing-function "
        "animation-delay animation-iteration-count animation-direction "
        "animation-fill-mode animation-play-state",
        "css-animation",
    ),
    **_each(
        "transition transition-delay transition-duration transition-property "
        "transition-timing-function transition-behavior",
        "css-transition",
    ),
    **_each("scroll-snap-type scroll-snap-align scroll-snap-stop", "css-scroll-snap"),
}

VENDOR_PREFIXES = ("-webkit-", "-moz-", "-ms-", "-o-")

FUNCTION_FEATURES: dict[str, str] = {
    "rgb": "css-rgb",
    "rgba": "css-rgba",
    "calc": "css-unit-calc",
    "clamp": "css-function-clamp",
    "min": "css-function-min",
    "max": "css-function-max",
    "light-dark": "css-function-light-dark",
    "linear-gradient": "css-linear-gradient",
    "repeating-linear-gradient": "css-linear-gradient",
    "radial-gradient": "css-radial-gradient",
    "repeating-radial-gradient": "css-radial-gradient",
    "conic-gradient": "css-conic-gradient",
    "repeating-conic-gradient": "css-conic-gradient",
    "lch": "css-modern-color",
    "oklch": "css-modern-color",
    "lab": "css-modern-color",
    "oklab": "css-modern-color",
    "var": "css-variables",
    "fit-content": "css-intrinsic-size",
}

UNIT_FEATURES: dict[str, str] = {
    unit: f"css-unit-{unit}"
    for unit in _words("ch cm em ex in mm pc pt px rem vh vmax vmin vw")
}
PERCENT = "css-unit-percent"
INTRINSIC_SIZES = frozenset({"fit-content", "min-content", "max-content"})
SYSTEM_FONTS = frozenset(
    {"system-ui", "ui-serif", "ui-sans-serif", "ui-rounded", "ui-monospace"}
)
DISPLAY_VALUES: dict[str, str] = {
    "flex": "css-display-flex",
    "inline-flex": "css-display-flex",
    "grid": "css-display-grid",
    "inline-grid": "css-display-grid",
    "none": "css-display-none",
}

AT_RULE_FEATURES: dict[str, str] = {
    "font-face": "css-at-font-face",
    "import": "css-at-import",
    "keyframes": "css-at-keyframes",
    "-webkit-keyframes": "css-at-keyframes",
    "media": "css-at-media",
    "supports": "css-at-supports",
}
MEDIA_FEATURES: dict[str, str] = {
    "hover": "css-at-media-hover",
    "any-hover": "css-at-media-hover",
    "orientation": "css-at-media-orientation",
    "prefers-color-scheme": "css-at-media-prefers-color-scheme",
    "prefers-reduced-motion": "css-at-media-prefers-reduced-motion",
}
PIXEL_RATIO = "css-at-media-device-pixel-ratio"
#: at-rules whose block holds style rules
GROUPING_AT_RULES = frozenset({"media", "supports", "layer", "container", "document"})

PSEUDO_CLASSES = frozenset(
    _words(
        "active checked default first-child first-of-type focus focus-visible "
        "focus-within has hover lang last-child last-of-type link not nth-child "
        "nth-last-child nth-last-of-type nth-of-type only-child only-of-type "
        "target visited"
    )
)
PSEUDO_ELEMENTS = frozenset(
    _words("after before first-letter first-line marker placeholder")
)
#: written with one colon, as CSS 2 did
LEGACY_PSEUDO_ELEMENTS = frozenset({"after", "before", "first-letter", "first-line"})
#: pseudo-classes whose argument is a selector
SELECTOR_PSEUDOS = frozenset({"not", "has", "is", "where"})
COMBINATORS: dict[str, str] = {
    ">": "css-selector-child",
    "+": "css-selector-adjacent-sibling",
    "~": "css-selector-general-sibling",
}

#: every slug L{scan} can report
DETECTABLE: frozenset[str] = frozenset(
    {
        *TAG_FEATURES.values(),
        *ATTRIBUTE_FEATURES.values(),
        *(f"html-input-{t}" for t in INPUT_TYPES),
        *(f"html-button-{t}" for t in BUTTON_TYPES),
        "html-anchor-links",
        "html-mailto-links",
        "html-meta-color-scheme",
        "html-body",
        "html-doctype",
        "html-comments",
        SCRIPT,
        *IMAGE_EXTENSIONS.values(),
        "image-base64",
        *(s for slugs in PROPERTY_FEATURES.values() for s in slugs),
        "css-variables",
        "css-important",
        "css-comments",
        "css-nesting",
        *FUNCTION_FEATURES.values(),
        *UNIT_FEATURES.values(),
        PERCENT,
        "css-unit-initial",
        "css-intrinsic-size",
        "css-sytem-ui",
        *DISPLAY_VALUES.values(),
        *AT_RULE_FEATURES.values(),
        *MEDIA_FEATURES.values(),
        PIXEL_RATIO,
        *(f"css-pseudo-class-{p}" for p in PSEUDO_CLASSES),
        *(f"css-pseudo-element-{p}" for p in PSEUDO_ELEMENTS),
        *COMBINATORS.values(),
        "css-selector-descendant",
        "css-selector-grouping",
        "css-selector-chaining",
        "css-selector-type",
        "css-selector-universal",
        "css-selector-class",
        "css-selector-id",
        "css-selector-attribute",
    }
)


@dataclass
class Findings:
    """
    What L{scan} found.

    @ivar found: how many times each feature (by caniemail slug) was found.
    @ivar nodes: the elements of the message, counted as Mailpit counts
        them (without C{<html>}, C{<head>}, C{<meta>}, nor a C{<body>} the
        message did not write).
    """

    found: Counter[str] = field(default_factory=Counter)
    nodes: int = 0


# --- the scan ------------------------------------------------------------------


class _BodyTag(HTMLParser):
    """
    Tells whether the markup itself has a C{<body>} start tag: an HTML
    parser adds one to any document, so the tree cannot say.
    """

    def __init__(self) -> None:
        super().__init__(convert_charrefs=False)
        self.found = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "body":
            self.found = True


def has_body_tag(markup: str, chunk: int = 4096) -> bool:
    """
    Whether C{markup} writes a C{<body>} start tag (reading only as far as
    it needs).
    """
    tokenizer = _BodyTag()
    for start in range(0, len(markup), chunk):
        tokenizer.feed(markup[start : start + chunk])
        if tokenizer.found:
            return True
    tokenizer.close()
    return tokenizer.found


def parse_html(markup: str) -> Any:
    """
    The markup as an lxml tree (its root element), or L{None} when it has
    no element at all.
    """
    parser = etree.HTMLParser(encoding="utf-8", default_doctype=False)
    try:
        return etree.fromstring(markup.encode("utf-8", "replace"), parser)
    except etree.ParserError:
        return None


_TRANSLATOR = HTMLTranslator()


@functools.lru_cache(maxsize=4096)
def selector_xpath(selector: str) -> str | None:
    """
    The XPath of a selector group, or L{None} when cssselect cannot match
    it (C{:hover}, pseudo-elements, syntax it does not know).  Cached: the
    same templates send the same selectors.
    """
    try:
        return _TRANSLATOR.css_to_xpath(selector)
    except (SelectorError, ValueError):
        return None


def _strip_vendor(name: str) -> str:
    for prefix in VENDOR_PREFIXES:
        if name.startswith(prefix):
            return name[len(prefix) :]
    return name


def _tokens(values: Iterable[Any]) -> Iterator[Any]:
    """
    Every token of a component value list, descending into blocks and
    function arguments.
    """
    for token in values:
        yield token
        if token.type == "function":
            yield from _tokens(token.arguments)
        elif token.type in ("() block", "[] block", "{} block"):
            yield from _tokens(token.content)


def declaration_features(declaration: Any) -> set[str]:
    """
    The features one CSS declaration (a tinycss2 C{Declaration}) uses: its
    property, C{!important}, and its value's functions, units and keywords.
    """
    name: str = declaration.lower_name
    hits: set[str] = set()
    if name.startswith("--"):
        hits.add("css-variables")
    name = _strip_vendor(name)
    hits.update(PROPERTY_FEATURES.get(name, ()))
    if declaration.important:
        hits.add("css-important")
    for token in _tokens(declaration.value):
        kind = token.type
        if kind == "function":
            slug = FUNCTION_FEATURES.get(token.lower_name)
            if slug:
                hits.add(slug)
        elif kind == "dimension":
            slug = UNIT_FEATURES.get(token.lower_unit)
            if slug:
                hits.add(slug)
        elif kind == "percentage":
            hits.add(PERCENT)
        elif kind == "ident":
            word = token.lower_value
            if word == "initial":
                hits.add("css-unit-initial")
            elif word in INTRINSIC_SIZES:
                hits.add("css-intrinsic-size")
            elif word in SYSTEM_FONTS and name in ("font-family", "font"):
                hits.add("css-sytem-ui")
            elif name == "display" and word in DISPLAY_VALUES:
                hits.add(DISPLAY_VALUES[word])
    return hits


def comments_in(values: Iterable[Any]) -> int:
    """
    How many CSS comments a component value list holds.
    """
    return sum(1 for token in _tokens(values) if token.type == "comment")


@functools.lru_cache(maxsize=8192)
def style_features(style: str) -> tuple[frozenset[str], int]:
    """
    The features of a C{style} attribute's declarations, and how many
    comments it holds.  Cached: a template repeats the same few styles on
    hundreds of elements.
    """
    hits: set[str] = set()
    comments = 0
    for item in tinycss2.parse_blocks_contents(
        style, skip_comments=False, skip_whitespace=True
    ):
        if item.type == "declaration":
            hits |= declaration_features(item)
            comments += comments_in(item.value)
        elif item.type == "comment":
            comments += 1
    return frozenset(hits), comments


def _block_features(content: Any) -> tuple[set[str], int, list[Any]]:
    """
    The features of the declarations in a rule's block, how many comments
    it holds, and the rules nested in it.
    """
    hits: set[str] = set()
    comments = 0
    nested: list[Any] = []
    for item in tinycss2.parse_blocks_contents(
        content, skip_comments=False, skip_whitespace=True
    ):
        if item.type == "declaration":
            hits |= declaration_features(item)
            comments += comments_in(item.value)
        elif item.type == "comment":
            comments += 1
        elif item.type in ("qualified-rule", "at-rule"):
            nested.append(item)
    return hits, comments, nested


def _split(tokens: list[Any], separator: str) -> list[list[Any]]:
    parts: list[list[Any]] = [[]]
    for token in tokens:
        if token.type == "literal" and token.value == separator:
            parts.append([])
        else:
            parts[-1].append(token)
    return parts


def selector_features(prelude: list[Any], found: Counter[str]) -> None:
    """
    Count the selector features of a style rule's prelude: simple
    selectors, combinators, grouping, chaining, pseudo-classes and
    pseudo-elements (also inside C{:not()}, C{:has()}, C{:is()}).
    """
    groups = _split(prelude, ",")
    if len(groups) > 1:
        found["css-selector-grouping"] += 1
    for group in groups:
        _complex_selector(group, found)


def _complex_selector(tokens: list[Any], found: Counter[str]) -> None:
    simple = 0  # type, class, id, attribute and universal selectors of a compound
    parts = 0  # all of the compound, pseudo-classes included
    space = False  # whitespace after a compound: a descendant combinator, maybe
    i = 0
    while i < len(tokens):
        token = tokens[i]
        kind = token.type
        if kind in ("whitespace", "comment"):
            space = space or parts > 0
            i += 1
            continue
        if kind == "literal" and token.value in COMBINATORS:
            found[COMBINATORS[token.value]] += 1
            _end_compound(simple, found)
            simple = parts = 0
            space = False
            i += 1
            continue
        if space:
            found["css-selector-descendant"] += 1
            _end_compound(simple, found)
            simple = parts = 0
            space = False
        parts += 1
        if kind == "literal" and token.value == "." and i + 1 < len(tokens):
            found["css-selector-class"] += 1
            simple += 1
            i += 2
        elif kind == "literal" and token.value == ":":
            i = _pseudo(tokens, i, found)
        else:
            slug = _SIMPLE_SELECTORS.get(kind)
            if kind == "literal":
                slug = "css-selector-universal" if token.value == "*" else None
            if slug:
                found[slug] += 1
                simple += 1
            i += 1
    _end_compound(simple, found)


_SIMPLE_SELECTORS = {
    "hash": "css-selector-id",
    "[] block": "css-selector-attribute",
    "ident": "css-selector-type",
}


def _end_compound(simple: int, found: Counter[str]) -> None:
    if simple > 1:
        found["css-selector-chaining"] += 1


def _pseudo(tokens: list[Any], i: int, found: Counter[str]) -> int:
    """
    Count the pseudo-class or pseudo-element at C{tokens[i]} (a colon);
    return the index after it.
    """
    double = i + 1 < len(tokens) and tokens[i + 1].type == "literal"
    double = double and tokens[i + 1].value == ":"
    at = i + 2 if double else i + 1
    if at >= len(tokens):
        return at
    token = tokens[at]
    if token.type == "ident":
        name = token.lower_value
    elif token.type == "function":
        name = token.lower_name
        if name in SELECTOR_PSEUDOS:
            selector_features(list(token.arguments), found)
    else:
        return at + 1
    name = _strip_vendor(name)
    if double or name in LEGACY_PSEUDO_ELEMENTS:
        if name in PSEUDO_ELEMENTS:
            found[f"css-pseudo-element-{name}"] += 1
    elif name in PSEUDO_CLASSES:
        found[f"css-pseudo-class-{name}"] += 1
    return at + 1


def _media_features(tokens: Iterable[Any], hits: set[str]) -> None:
    for token in tokens:
        if token.type != "() block":
            continue
        names = [t for t in token.content if t.type == "ident"]
        if names:
            name = names[0].lower_value
            if "device-pixel-ratio" in name:
                hits.add(PIXEL_RATIO)
            else:
                for prefix in ("min-", "max-"):
                    name = name.removeprefix(prefix)
                if name in MEDIA_FEATURES:
                    hits.add(MEDIA_FEATURES[name])
        _media_features(token.content, hits)


class _Scan:
    """
    One message's scan: the tree, the features per element, and those
    counted once per rule.
    """

    def __init__(self, root: Any) -> None:
        self.root = root
        self.found: Counter[str] = Counter()
        self.by_element: dict[Any, set[str]] = {}

    def count(self, slug: str, times: int) -> None:
        if times:
            self.found[slug] += times

    def element(self, el: Any) -> set[str]:
        hits = self.by_element.get(el)
        if hits is None:
            hits = self.by_element[el] = set()
        return hits

    def stylesheet(self, css: str) -> None:
        rules = tinycss2.parse_stylesheet(
            css, skip_comments=False, skip_whitespace=True
        )
        self.rules(rules, top_level=True)

    def rules(self, rules: Iterable[Any], *, top_level: bool) -> None:
        for rule in rules:
            if rule.type == "comment":
                self.found["css-comments"] += 1
            elif rule.type == "at-rule":
                self.at_rule(rule)
            elif rule.type == "qualified-rule":
                self.style_rule(rule, top_level=top_level)

    def at_rule(self, rule: Any) -> None:
        name = rule.lower_at_keyword
        slug = AT_RULE_FEATURES.get(name)
        if slug:
            self.found[slug] += 1
        if name == "media":
            hits: set[str] = set()
            _media_features(rule.prelude, hits)
            self.found.update(hits)
        if rule.content is None:
            return
        if name in GROUPING_AT_RULES:
            inner = tinycss2.parse_rule_list(
                rule.content, skip_comments=False, skip_whitespace=True
            )
            self.rules(inner, top_level=False)
        elif name.endswith("keyframes"):
            frames = tinycss2.parse_rule_list(
                rule.content, skip_comments=False, skip_whitespace=True
            )
            for frame in frames:
                if frame.type == "qualified-rule":
                    hits, comments, _ = _block_features(frame.content)
                    self.found.update(hits)
                    self.count("css-comments", comments)
                elif frame.type == "comment":
                    self.found["css-comments"] += 1

    def style_rule(self, rule: Any, *, top_level: bool) -> None:
        selector_features(rule.prelude, self.found)
        hits, comments, nested = _block_features(rule.content)
        self.count("css-comments", comments)
        if nested:
            self.found["css-nesting"] += len(nested)
            for inner in nested:
                if inner.type == "qualified-rule":
                    self.style_rule(inner, top_level=False)
                else:
                    self.at_rule(inner)
        if not hits:
            return
        matched: list[Any] = []
        if top_level:
            xpath = selector_xpath(tinycss2.serialize(rule.prelude).strip())
            if xpath is not None:
                try:
                    result = self.root.xpath(xpath)
                except etree.XPathError:
                    result = []
                if isinstance(result, list):
                    matched = result
        if matched:
            for el in matched:
                self.element(el).update(hits)
        else:
            self.found.update(hits)

    def inline_style(self, el: Any, style: str) -> None:
        hits, comments = style_features(style)
        self.element(el).update(hits)
        self.count("css-comments", comments)

    def html_element(self, el: Any) -> None:
        tag = el.tag
        hits = self.element(el)
        slug = TAG_FEATURES.get(tag)
        if slug:
            hits.add(slug)
        attrib = el.attrib
        for name in attrib:
            slug = ATTRIBUTE_FEATURES.get(name.lower())
            if slug:
                hits.add(slug)
        if tag == "input":
            kind = (attrib.get("type") or "text").strip().lower()
            if kind in INPUT_TYPES:
                hits.add(f"html-input-{kind}")
        elif tag == "button":
            kind = (attrib.get("type") or "").strip().lower()
            if kind in BUTTON_TYPES:
                hits.add(f"html-button-{kind}")
        elif tag in ("a", "area"):
            href = (attrib.get("href") or "").strip()
            if href.startswith("#"):
                hits.add("html-anchor-links")
            elif href.lower().startswith("mailto:"):
                hits.add("html-mailto-links")
        elif tag == "meta":
            if (attrib.get("name") or "").strip().lower() in COLOR_SCHEME_META:
                hits.add("html-meta-color-scheme")
        elif tag == "script":
            kind = (attrib.get("type") or "").strip().lower()
            if kind not in JSON_SCRIPT_TYPES:
                hits.add(SCRIPT)
        elif tag == "img":
            self.image(attrib.get("src"))
        style = attrib.get("style")
        if style:
            self.inline_style(el, style)

    def image(self, src: str | None) -> None:
        src = (src or "").strip()
        if not src:
            return
        if src[:11].lower() == "data:image/":
            self.found["image-base64"] += 1
            return
        try:
            path = urlsplit(src).path
        except ValueError:
            return
        extension = path.rsplit(".", 1)[-1].lower() if "." in path else ""
        slug = IMAGE_EXTENSIONS.get(extension)
        if slug:
            self.found[slug] += 1


_NOT_NODES = frozenset({"html", "head", "meta"})


def scan(markup: str) -> Findings:
    """
    The caniemail features an HTML body uses, and its element count.
    """
    findings = Findings()
    root = parse_html(markup)
    if root is None:
        return findings
    explicit_body = has_body_tag(markup)
    run = _Scan(root)
    nodes = 0
    elements: list[Any] = []
    for el in root.iter():
        tag = el.tag
        if not isinstance(tag, str):
            if tag is etree.Comment:
                run.found["html-comments"] += 1
            continue
        elements.append(el)
        if tag not in _NOT_NODES and (tag != "body" or explicit_body):
            nodes += 1
    # Stylesheets first, so that their rules land on the elements.
    for el in elements:
        if el.tag == "style" and el.text:
            run.stylesheet(el.text)
    for el in elements:
        run.html_element(el)
    for hits in run.by_element.values():
        run.found.update(hits)
    if explicit_body:
        run.found["html-body"] += 1
    doctype = (root.getroottree().docinfo.doctype or "").strip().lower()
    if doctype == "<!doctype html>":
        run.found["html-doctype"] += 1
    findings.found = run.found
    findings.nodes = nodes
    return findings
