"""
Tests for L{twisted_netlab.mail.lab.checks.html_features}: which caniemail
features an HTML body uses, and how often, found by parsing.
"""

from __future__ import annotations

from collections import Counter

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from twisted_netlab.mail.lab.checks import caniemail
from twisted_netlab.mail.lab.checks.html_features import (
    DETECTABLE,
    has_body_tag,
    scan,
)


def found(markup: str) -> Counter[str]:
    return scan(markup).found


def css(markup: str) -> set[str]:
    """
    The CSS features (units left out) of a fragment.
    """
    return {
        slug
        for slug in found(markup)
        if slug.startswith("css-") and not slug.startswith("css-unit-")
    }


class InlineStyleTests(SynchronousTestCase):
    """
    Properties and values in C{style} attributes: the cases of Mailpit's own
    test (internal/htmlcheck/inline_test.go), and more.
    """

    def test_mailpit_cases(self) -> None:
        """
        Every way of writing a property is seen (spaces, case, tabs), and a
        longer property with the same ending is not taken for it.
        """
        cases = {
            "transform: rotate(20deg)": {"css-transform"},
            "color: green; transform:rotate(20deg)": {"css-transform"},
            "color:green; transform :rotate(20deg)": {"css-transform"},
            "TRANSFORM:rotate(20deg)": {"css-transform"},
            "transform:\trotate(20deg)": {"css-transform"},
            "ignore-transform: something": set(),
            "text-transform: uppercase": {"css-text-transform"},
            "text-transform: uppercase; text-transform: uppercase": {
                "css-text-transform"
            },
            "test-transform: uppercase": set(),
            "padding-inline-start: 5rem": {"css-padding-inline-start-end"},
            "margin-inline-end: 5rem": {"css-margin-inline-start-end"},
            "margin-inline-middle: 5rem": set(),
            "color:green!important": {"css-important"},
            "color: green !important": {"css-important"},
            "color: green!important;": {"css-important"},
            "background-image:url('img.jpg')": {"css-background-image"},
            " color:green; background-image:url('img.jpg');": {"css-background-image"},
            "display  : flex ;": {"css-display", "css-display-flex"},
            "DISPLAY:FLEX;": {"css-display", "css-display-flex"},
            "display: flexing;": {"css-display"},
            "line-height: 1rem;opacity: 0.5; width: calc(10px + 100px)": {
                "css-line-height",
                "css-opacity",
                "css-width",
            },
            "color: rgb(255,255,255);": {"css-rgb"},
            "color:rgba(255,255,255, 0);": {"css-rgba"},
            "border: solid rgb(255,255,255) 1px; color:rgba(255,255,255, 0);": {
                "css-border",
                "css-rgb",
                "css-rgba",
            },
        }
        for style, expected in cases.items():
            markup = f'<h1 style="{style}">Heading</h1>'
            got = css(markup) - {"css-unit-calc"}
            self.assertEqual(got, expected, style)

    def test_values(self) -> None:
        """
        Functions, units, keywords and custom properties in values.
        """
        cases = {
            "width: calc(100% - 2em)": {
                "css-width",
                "css-unit-calc",
                "css-unit-percent",
                "css-unit-em",
            },
            "width: clamp(1ch, 50vw, 3vmax)": {
                "css-width",
                "css-function-clamp",
                "css-unit-ch",
                "css-unit-vw",
                "css-unit-vmax",
            },
            "color: light-dark(#000, #fff)": {"css-function-light-dark"},
            "color: oklch(70% 0.1 200)": {"css-modern-color", "css-unit-percent"},
            "background: linear-gradient(red, blue)": {
                "css-background",
                "css-linear-gradient",
            },
            "background-image: repeating-radial-gradient(red, blue)": {
                "css-background-image",
                "css-radial-gradient",
            },
            "--brand: red; color: var(--brand)": {"css-variables"},
            "width: max-content": {"css-width", "css-intrinsic-size"},
            "height: fit-content(10px)": {
                "css-height",
                "css-intrinsic-size",
                "css-unit-px",
            },
            "font-family: system-ui, sans-serif": {"css-sytem-ui"},
            "color: initial": {"css-unit-initial"},
            "display: none": {"css-display", "css-display-none"},
            "display: inline-grid": {"css-display", "css-display-grid"},
            "-webkit-backdrop-filter: blur(2px)": {
                "css-backdrop-filter",
                "css-unit-px",
            },
        }
        for style, expected in cases.items():
            self.assertEqual(
                set(found(f'<p style="{style}">x</p>')) - {"html-p"}, expected, style
            )

    def test_keyword_needs_its_property(self) -> None:
        """
        C{system-ui} is a font only in a font property, C{none} a display
        value only in C{display}.
        """
        self.assertNotIn("css-sytem-ui", css('<p style="content: system-ui">x</p>'))
        self.assertNotIn("css-display-none", css('<p style="float: none">x</p>'))

    def test_property_families(self) -> None:
        """
        Longhands count as the feature caniemail tests them under.
        """
        cases = {
            "margin-left: 0": {"css-margin"},
            "border-top-color: red": {"css-border"},
            "border-top-left-radius: 0": {"css-border-radius"},
            "border-start-end-radius: 0": {"css-border-radius-logical"},
            "border-inline-start-width: 0": {"css-border-inline-block-longhand"},
            "border-block-color: red": {"css-border-inline-block-individual"},
            "column-gap: 0": {"css-gap", "css-column-layout-properties"},
            "grid-template-columns: auto": {"css-grid-template"},
            "top: 0": {"css-left-right-top-bottom"},
            "overflow-x: hidden": {"css-overflow"},
            "transition-duration: 1s": {"css-transition"},
            "animation-name: spin": {"css-animation"},
        }
        for style, expected in cases.items():
            self.assertEqual(css(f'<p style="{style}">x</p>'), expected, style)

    def test_counted_per_element(self) -> None:
        """
        A property counts once for each element that has it, however often
        the element's style says it.
        """
        markup = '<p style="color:rgb(1,2,3);background:rgb(1,2,3)">a</p>' * 3
        self.assertEqual(found(markup)["css-rgb"], 3)
        self.assertEqual(found(markup)["html-p"], 3)

    def test_text_is_not_css(self) -> None:
        """
        CSS written as text, or in an attribute other than C{style}, is not
        used CSS: a pattern over the markup would take it for some.
        """
        markup = (
            '<p title="display:flex; color: rgb(1,2,3)">display:flex</p>'
            "<!-- <p style='display:grid'> -->"
        )
        self.assertEqual(css(markup), set())


class StylesheetTests(SynchronousTestCase):
    """
    C{<style>} rules: matched to the elements they select, and their
    selectors, at-rules and comments.
    """

    def test_rule_counts_per_selected_element(self) -> None:
        """
        A rule's properties count for each element it selects, once for an
        element that has them inline too.
        """
        markup = (
            "<style>td.col > p { display: flex }</style>"
            '<table><tr><td class="col"><p>a</p><p style="display:flex">b</p>'
            "</td><td><p>c</p></td></tr></table>"
        )
        self.assertEqual(found(markup)["css-display-flex"], 2)

    def test_rule_selecting_nothing_counts_once(self) -> None:
        """
        A rule for elements the message lacks, with C{:hover}, or inside
        C{@media} still uses its properties: once for the rule.
        """
        markup = (
            "<style>.missing{opacity:.5} a:hover{opacity:.5}"
            "@media (max-width: 600px) { p { opacity: .5 } }</style><p>x</p>"
        )
        self.assertEqual(found(markup)["css-opacity"], 3)

    def test_at_rules(self) -> None:
        """
        Each at-rule counts, and the media features a query tests.
        """
        markup = (
            "<style>@import url(x.css); @font-face { font-family: X }"
            "@keyframes spin { from { transform: none } }"
            "@media (min-width: 1px) and (prefers-color-scheme: dark) {}"
            "@media screen and (-webkit-min-device-pixel-ratio: 2) {}"
            "@media (hover: hover) and (orientation: landscape)"
            " and (prefers-reduced-motion: reduce) {}"
            "@supports (display: grid) {}</style>"
        )
        got = found(markup)
        self.assertEqual(got["css-at-import"], 1)
        self.assertEqual(got["css-at-font-face"], 1)
        self.assertEqual(got["css-at-keyframes"], 1)
        self.assertEqual(got["css-at-media"], 3)
        self.assertEqual(got["css-at-supports"], 1)
        self.assertEqual(got["css-transform"], 1)
        for slug in (
            "css-at-media-prefers-color-scheme",
            "css-at-media-device-pixel-ratio",
            "css-at-media-hover",
            "css-at-media-orientation",
            "css-at-media-prefers-reduced-motion",
        ):
            self.assertEqual(got[slug], 1, slug)
        self.assertNotIn("css-display-grid", got)

    def test_selectors(self) -> None:
        """
        Simple selectors, combinators, grouping and chaining, counted each
        time they are written.
        """
        markup = (
            "<style>"
            "p, .a { color: red }"
            "div > p + span ~ b { color: red }"
            "td p { color: red }"
            "a.b.c { color: red }"
            "#x [href] * { color: red }"
            "</style>"
        )
        got = found(markup)
        self.assertEqual(got["css-selector-grouping"], 1)
        self.assertEqual(got["css-selector-type"], 8)
        self.assertEqual(got["css-selector-class"], 3)
        self.assertEqual(got["css-selector-child"], 1)
        self.assertEqual(got["css-selector-adjacent-sibling"], 1)
        self.assertEqual(got["css-selector-general-sibling"], 1)
        self.assertEqual(got["css-selector-descendant"], 3)
        self.assertEqual(got["css-selector-chaining"], 1)
        self.assertEqual(got["css-selector-id"], 1)
        self.assertEqual(got["css-selector-attribute"], 1)
        self.assertEqual(got["css-selector-universal"], 1)

    def test_pseudo_classes_and_elements(self) -> None:
        """
        Pseudo-classes and pseudo-elements, with one colon or two, and
        inside C{:not()}.
        """
        markup = (
            "<style>a:hover, a:visited, li:nth-child(2n), p:not(:first-child),"
            " p::before, p:after, ::placeholder, p:has(> img) { color: red }"
            "</style>"
        )
        got = found(markup)
        for slug in (
            "css-pseudo-class-hover",
            "css-pseudo-class-visited",
            "css-pseudo-class-nth-child",
            "css-pseudo-class-not",
            "css-pseudo-class-first-child",
            "css-pseudo-element-before",
            "css-pseudo-element-after",
            "css-pseudo-element-placeholder",
            "css-pseudo-class-has",
        ):
            self.assertEqual(got[slug], 1, slug)
        self.assertEqual(got["css-selector-child"], 1)

    def test_comments_and_nesting(self) -> None:
        """
        CSS comments in stylesheets and in C{style}; a rule nested in a
        rule.
        """
        markup = (
            "<style>/* a */ p { color: red; /* b */ & span { color: blue } }"
            "</style><p style='color: red /* c */'>x</p>"
        )
        got = found(markup)
        self.assertEqual(got["css-comments"], 3)
        self.assertEqual(got["css-nesting"], 1)

    def test_broken_css(self) -> None:
        """
        CSS that does not parse is skipped, the rest still counted.
        """
        markup = (
            "<style>p { color: ; } @media (x) { p { opacity: 1 } } ;;; garbage { {"
            "</style><p style='color:: ; ;width:1px; {{'>x</p>"
        )
        got = found(markup)
        self.assertEqual(got["css-at-media"], 1)
        self.assertEqual(got["css-opacity"], 1)
        self.assertEqual(got["css-width"], 1)


class HTMLTests(SynchronousTestCase):
    """
    Elements and attributes.
    """

    def test_elements(self) -> None:
        """
        Elements are counted under their feature, several under one.
        """
        got = found(
            "<h1>a</h1><h3>b</h3><ul><li>x</li></ul><ol></ol><video></video>"
            "<article></article><nav></nav><embed><object></object><map></map>"
        )
        self.assertEqual(got["html-h1-h6"], 2)
        self.assertEqual(got["html-lists"], 2)
        self.assertEqual(got["html-video"], 1)
        self.assertEqual(got["html-semantics"], 2)
        self.assertEqual(got["html-object"], 2)
        self.assertEqual(got["html-image-maps"], 1)

    def test_attributes(self) -> None:
        """
        Attributes count once per element that has them.
        """
        got = found(
            '<table width="600" cellpadding="0" bgcolor="#fff" border="0" '
            'align="center" role="presentation" dir="rtl" lang="fr">'
            '<tr><td valign="top" background="x.png" height="10">'
            '<img srcset="a.png 2x" sizes="100vw" loading="lazy" usemap="#m" '
            'aria-label="x" hidden></td></tr></table>'
        )
        for slug in (
            "html-width",
            "html-cellpadding",
            "css-background-color",
            "css-border",
            "html-align",
            "html-role",
            "html-dir",
            "html-lang",
            "html-valign",
            "html-background",
            "html-height",
            "html-loading-attribute",
            "html-image-maps",
            "html-aria-label",
            "html-hidden",
        ):
            self.assertEqual(got[slug], 1, slug)
        self.assertEqual(got["html-srcset"], 1)

    def test_form_controls(self) -> None:
        """
        Inputs by type (text when untyped), buttons by their written type.
        """
        got = found(
            '<form><input><input type="TEXT"><input type="checkbox">'
            '<input type="hidden"><input type="radio"><input type="submit">'
            '<input type="reset"><button type="reset"></button>'
            '<button type="submit"></button><button></button></form>'
        )
        self.assertEqual(got["html-form"], 1)
        self.assertEqual(got["html-input-text"], 2)
        for kind in ("checkbox", "hidden", "radio", "submit", "reset"):
            self.assertEqual(got[f"html-input-{kind}"], 1, kind)
        self.assertEqual(got["html-button-reset"], 1)
        self.assertEqual(got["html-button-submit"], 1)

    def test_links_and_meta(self) -> None:
        """
        Local anchors, mailto: links and the color-scheme meta tag.
        """
        got = found(
            '<meta name="color-scheme" content="light dark">'
            '<a href="#top">t</a><a href="MAILTO:a@b">m</a><a href="https://x">x</a>'
        )
        self.assertEqual(got["html-anchor-links"], 1)
        self.assertEqual(got["html-mailto-links"], 1)
        self.assertEqual(got["html-meta-color-scheme"], 1)

    def test_scripts(self) -> None:
        """
        A script is Mailpit's html-script warning; JSON data is not a
        script.
        """
        got = found(
            '<script>alert(1)</script><script type="application/ld+json">{}</script>'
        )
        self.assertEqual(got["html-script"], 1)

    def test_images(self) -> None:
        """
        An image's format comes from its URL's path (a query does not hide
        it); inline data is image-base64.
        """
        got = found(
            '<img src="https://x/a.PNG?v=2"><img src="b.webp"><img src="c.jpeg">'
            '<img src="data:image/gif;base64,R0lGOD"><img src="https://x/noext">'
            '<img src="t.tiff#f">'
        )
        self.assertEqual(got["image-png"], 1)
        self.assertEqual(got["image-webp"], 1)
        self.assertEqual(got["image-jpg"], 1)
        self.assertEqual(got["image-base64"], 1)
        self.assertEqual(got["image-tiff"], 1)
        self.assertNotIn("image-gif", got)

    def test_document_features(self) -> None:
        """
        An HTML5 doctype, a written C{<body>} and comments are features of
        a whole document; a fragment has no body of its own.
        """
        document = (
            "<!DOCTYPE html><html><head></head><body><!-- c --><p>x</p></body></html>"
        )
        got = found(document)
        self.assertEqual(got["html-doctype"], 1)
        self.assertEqual(got["html-body"], 1)
        self.assertEqual(got["html-comments"], 1)
        fragment = found("<p>x</p>")
        self.assertNotIn("html-body", fragment)
        self.assertNotIn("html-doctype", fragment)
        old = found('<!DOCTYPE html PUBLIC "-//W3C//DTD XHTML 1.0 Strict//EN" "x"><p>x')
        self.assertNotIn("html-doctype", old)

    def test_body_tag(self) -> None:
        """
        A C{<body>} start tag is seen however late it comes, and not in a
        comment or a script.
        """
        self.assertTrue(has_body_tag("<style>" + "x" * 40000 + "</style><BODY>"))
        self.assertFalse(has_body_tag("<!-- <body> --><script>'<body>'</script><p>"))

    def test_nodes(self) -> None:
        """
        Nodes are the elements without html, head and meta, and without a
        body the message did not write.
        """
        self.assertEqual(scan("<p>a</p><p>b<b>c</b></p>").nodes, 3)
        document = (
            "<html><head><meta charset=utf-8><title>t</title></head>"
            "<body><p>a</p></body></html>"
        )
        self.assertEqual(scan(document).nodes, 3)

    def test_nothing(self) -> None:
        """
        No markup is no nodes and no features.
        """
        for markup in ("", "   ", "<!-- -->", "<"):
            result = scan(markup)
            self.assertEqual((result.nodes, dict(result.found)), (0, {}), markup)

    @settings(max_examples=200, deadline=None)
    @given(
        st.text(alphabet=st.sampled_from(list("<>/=\"' pastyle:{};@-#.()!abc\x00\n")))
    )
    def test_any_markup(self, markup: str) -> None:
        """
        Whatever the markup, the scan answers, with counts that are positive
        and features it knows.
        """
        result = scan(markup)
        self.assertGreaterEqual(result.nodes, 0)
        self.assertTrue(set(result.found) <= DETECTABLE)
        self.assertTrue(all(n > 0 for n in result.found.values()))


class DetectableTests(SynchronousTestCase):
    """
    The features the scan knows.
    """

    def test_all_in_the_data(self) -> None:
        """
        Every slug the scan can report is a feature of the vendored data
        (a refresh that renames one shows up here), except Mailpit's own
        html-script.
        """
        features = caniemail.load().features
        self.assertEqual(DETECTABLE - set(features), {"html-script"})

    def test_most_of_the_data(self) -> None:
        """
        The data's features the scan cannot see are those a message's HTML
        does not show: AMP (another MIME part) and BIMI (DNS).
        """
        features = set(caniemail.load().features)
        self.assertEqual(features - DETECTABLE, {"amp", "bimi"})
