"""The HTML report (issue 13): one self-contained page whose structure is what a reader needs.
Parsed with the standard library's html.parser: the two texts, one bar per shared latent, tokens
highlighted for those latents, labels beside them, and nothing fetched from anywhere."""

from __future__ import annotations

from html.parser import HTMLParser

import pytest

from splare_lucene.explain.records import LatentContext, LatentLabel, LatentLabels
from splare_lucene.explain.render import render

DOC = "Honey bees pollinate flowers and crops, carrying pollen from plant to plant."


class _Page(HTMLParser):
    """Elements as (tag, attrs) in document order, the text under each id'd section, and every
    attribute value that could load something."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.elements: list[tuple[str, dict]] = []
        self.urls: list[str] = []
        self.section_text: dict[str, str] = {}
        self._section: list[str] = []
        self.text = ""

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.elements.append((tag, attrs))
        for key in ("src", "href", "action", "data", "poster", "srcset"):
            if key in attrs:
                self.urls.append(attrs[key])
        if "url(" in attrs.get("style", ""):
            self.urls.append(attrs["style"])
        if tag == "section":
            self._section.append(attrs.get("id", ""))

    def handle_endtag(self, tag):
        if tag == "section" and self._section:
            self._section.pop()

    def handle_data(self, data):
        self.text += data
        for sid in self._section:
            self.section_text[sid] = self.section_text.get(sid, "") + data

    def find(self, tag=None, cls=None, **attrs):
        return [a for t, a in self.elements if (tag is None or t == tag)
                and (cls is None or cls in a.get("class", "").split())
                and all(a.get(k.replace("_", "-")) == v for k, v in attrs.items())]


@pytest.fixture(scope="module")
def encoder(tiny_model):
    from splare_lucene.encoder import SplareEncoder

    return SplareEncoder.from_pretrained(tiny_model, device="cpu")


def _parse(html: str) -> _Page:
    page = _Page()
    page.feed(html)
    page.close()
    return page


def test_report_structure(encoder):
    labels = LatentLabels(encoder.d_sae, None, "", ({"kind": "corpus", "corpus": "demo"},),
                          {j: LatentLabel(j, None, (LatentContext(1.0, f"word{j}", "", "", "d"),))
                           for j in range(0, encoder.d_sae, 2)})
    e = encoder.explain("bees pollinate flowers <b>&amp;</b>", DOC, labels=labels)
    html = render(e, "html")
    page = _parse(html)
    assert html.startswith("<!DOCTYPE html>") and page.find("meta", charset="utf-8")
    # self-contained: no URL attribute, no external stylesheet/script/image/frame, no @import
    assert page.urls == [] and not page.find("link") and not page.find("img") and not page.find("iframe")
    assert all("src" not in a for t, a in page.elements if t == "script")
    assert "http://" not in html and "https://" not in html and "@import" not in html
    # the two texts, whole (escaped markup in the query comes back as text, not as elements)
    assert " ".join(page.section_text["query"].split()).endswith("bees pollinate flowers <b>&amp;</b>")
    assert DOC in " ".join(page.section_text["document"].split())
    assert "<b>&amp;</b>" not in html and "&lt;b&gt;" in html
    # one row and one bar per shared latent, in the explanation's order, labels beside
    rows = page.find("tr", cls="latent")
    assert [int(r["data-latent"]) for r in rows] == [s.latent for s in e.shared] and rows
    assert len(page.find("div", cls="bar")) == len(e.shared)
    assert len(page.find("td", cls="label")) == sum(1 for s in e.shared if s.label)
    assert len(page.find("td", cls="nolabel")) == sum(1 for s in e.shared if not s.label)
    for s in e.shared:
        assert f"{s.query_impact} × {s.doc_impact} = {s.product}" in page.text
    # highlighted tokens: spans that name shared latents, in both texts
    shared = {str(s.latent) for s in e.shared}
    toks = page.find("span", cls="tok")
    assert toks and all(set(t["data-latents"].split()) <= shared for t in toks)
    hit_tokens = {h.token for s in e.shared for h in s.doc_tokens}
    assert hit_tokens and all(tok in page.section_text["document"] for tok in hit_tokens)
    assert f"score {e.score} = sum" in " ".join(page.text.split())


def test_query_only_report(encoder):
    e = encoder.explain("bees pollinate flowers")
    page = _parse(render(e, "html"))
    assert page.find("table", id="query-latents") and not page.find("table", id="shared")
    assert not page.find("section", id="document")
    assert len(page.find("tr", cls="latent")) == sum(1 for q in e.query_latents if q.impact > 0)
    assert len(page.find("div", cls="bar")) == len(page.find("tr", cls="latent"))
    assert page.urls == []


def test_unknown_format_is_refused(encoder):
    from splare_lucene.errors import ConfigError

    with pytest.raises(ConfigError, match=r"format must be one of \['text', 'json', 'html'\]; got 'pdf'"):
        render(encoder.explain("bees"), "pdf")
