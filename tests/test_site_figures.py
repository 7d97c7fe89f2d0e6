"""Figures readable on a phone (issue 18): drawn for the width they are shown at, served at 1x and 2x.

``course_lib.plotting.responsive`` records, in each PNG's ``course-figure`` text chunk, the CSS
width a figure is drawn for and the smallest font it draws (in CSS px at that width). A figure
shown ``d`` CSS px wide then shows that text at ``min_font_px * d / css_width`` CSS px, which
must be at least 9 on a 390x844 phone, for every figure image of every page. A PNG without that
record (a figure glued the old way) fails. The others check the helper itself, with no browser:
an old-style figure (10 inches wide, 8 pt legend, 100 dpi, shown on a phone) fails the same
check, the stacked version passes it, and the build leaves no base64 payload in served PNGs.
"""

from __future__ import annotations

import importlib.util
import re
import struct
from pathlib import Path
from urllib.parse import urlparse

import matplotlib

matplotlib.use("agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from course_lib import plotting  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
PHONE = {"width": 390, "height": 844}
#: Every page with a figure: a glue:figure directive in its source.
FIGURE_PAGES = sorted(
    f"book/{p.stem}.html" for p in (ROOT / "book").glob("*.md") if "{glue:figure}" in p.read_text()
)


def shown_text_px(meta: dict | None, shown_width: float) -> float:
    """The smallest text of a figure, in CSS px, when it is shown ``shown_width`` CSS px wide."""
    if not meta or "min_font_px" not in meta:
        return 0.0  # nothing recorded: not drawn for the site (plotting.responsive)
    return meta["min_font_px"] * shown_width / meta["css_width"]


def _figures_ext():
    spec = importlib.util.spec_from_file_location("figures", ROOT / "book" / "_ext" / "figures.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _two_panels(figsize=(10, 4)):
    plotting.use_course_style()
    fig, axes = plt.subplots(1, 2, figsize=figsize, sharey=True, constrained_layout=True)
    x = np.linspace(0, 10, 40)
    for ax in axes:
        plotting.plot_mean_band(ax, x, np.sin(x) + np.arange(3)[:, None] * 0.1, "relu")
        ax.set_xlabel("epoch")
        ax.legend(fontsize=8)
        ax.set_title("a long title that is wider than a narrowed panel is")
    return fig, axes


def test_an_old_style_figure_fails_on_a_phone():
    """The figure as pages drew it before: 10 in at 100 dpi, an 8 pt legend, its PNG's pixel width
    as its width attribute, shown in a 390 px phone's 342 px column: under 4 CSS px."""
    fig, _ = _two_panels()
    pt, _text = plotting.smallest_text(fig)
    old = {"min_font_px": pt * 100 / 72, "css_width": fig.get_size_inches()[0] * 100}
    plt.close(fig)
    assert pt == 8
    assert shown_text_px(old, 342) < plotting.MIN_TEXT_PX
    assert shown_text_px(None, 342) < plotting.MIN_TEXT_PX  # unrecorded: fails too


def test_responsive_draws_for_the_column_and_stacks():
    fig, axes = _two_panels()
    fig_r = plotting.responsive(fig)
    top, bottom = (ax.get_position() for ax in axes)  # after restacking: one above the other
    plt.close(fig)
    assert top.y0 > bottom.y1 and abs(top.x0 - bottom.x0) < 0.05
    v = fig_r.versions
    assert set(v) == {"wide@1x", "wide@2x", "narrow@1x", "narrow@2x"}
    for name, png in v.items():
        meta = plotting.figure_meta(png)
        w, h = struct.unpack(">II", png[16:24])
        assert meta["scale"] == int(name[-2])
        assert abs(w - meta["css_width"] * meta["scale"]) <= 2
        assert abs(h - meta["css_height"] * meta["scale"]) <= 2
        assert meta["min_font_px"] == pytest.approx(8 * 96 / 72, abs=0.01)
    wide, narrow = plotting.figure_meta(v["wide@1x"]), plotting.figure_meta(v["narrow@1x"])
    assert abs(wide["css_width"] - 672) <= 3 and abs(narrow["css_width"] - 312) <= 3  # titles wrapped
    assert narrow["css_height"] > 1.5 * wide["css_height"]
    assert shown_text_px(narrow, 312) >= plotting.MIN_TEXT_PX  # a 360 px phone
    assert shown_text_px(wide, 672) >= plotting.MIN_TEXT_PX  # a laptop


def test_responsive_refuses_a_figure_it_cannot_restack():
    fig, ax = plt.subplots()
    fig.add_axes([0.9, 0.1, 0.02, 0.8])
    with pytest.raises(ValueError, match="add_axes"):
        plotting.responsive(fig)
    plt.close(fig)


def test_build_writes_versions_and_strips_the_payload(tmp_path):
    fig, _ = _two_panels()
    bundle = plotting.responsive(fig)._repr_mimebundle_()
    plt.close(fig)
    import base64

    main = base64.b64decode(bundle["image/png"])
    meta = plotting.figure_meta(main)
    assert set(meta["variants"]) == {"wide@2x", "narrow@1x", "narrow@2x"}
    (tmp_path / "abc.png").write_bytes(main)
    ext = _figures_ext()
    assert ext.write_versions(tmp_path) == 1
    assert ext.write_versions(tmp_path) == 0  # idempotent
    served = (tmp_path / "abc.png").read_bytes()
    assert len(served) < len(main) / 3 and "variants" not in plotting.figure_meta(served)
    for name in ("abc@2x.png", "abc-narrow.png", "abc-narrow@2x.png"):
        assert plotting.figure_meta((tmp_path / name).read_bytes())["css_width"] > 0
    tag = '<img alt="x" src="../_images/abc.png" />'
    html = ext.picture(tag, "../_images/abc.png", plotting.figure_meta(served))
    assert 'srcset="../_images/abc.png 1x, ../_images/abc@2x.png 2x"' in html
    assert re.search(r'<source media="\(max-width: \d+px\)" srcset="../_images/abc-narrow.png 1x, '
                     r'../_images/abc-narrow@2x.png 2x"', html)


def test_served_figures_carry_no_payload(site):
    """Readers download only what they see: no served PNG still carries the other versions."""
    pngs = sorted((site / "_images").glob("*.png"))
    assert pngs
    heavy = [p.name for p in pngs if "variants" in (plotting.figure_meta(p.read_bytes()) or {})]
    assert heavy == []


@pytest.mark.browser
@pytest.mark.parametrize("path", FIGURE_PAGES)
def test_figure_text_on_a_phone(browser, site, site_url, path):
    """At 390x844 (3 device px per CSS px) every figure image is a 2x PNG whose smallest text is
    at least 9 CSS px as shown: its recorded font size scaled by shown width / drawn width."""
    ctx = browser.new_context(viewport=PHONE, device_scale_factor=3, is_mobile=True, has_touch=True)
    page = ctx.new_page()
    page.goto(f"{site_url}/{path}", wait_until="networkidle")
    shown = page.evaluate(
        """async () => {
        const out = [];
        for (const img of document.querySelectorAll('article img')) {
            if (!img.getAttribute('src').includes('_images/')) continue;
            img.scrollIntoView();
            img.loading = 'eager';
            await img.decode().catch(() => {});
            out.push({src: img.currentSrc, width: img.getBoundingClientRect().width,
                      alt: (img.alt || '').slice(0, 50)});
        }
        return out;
        }"""
    )
    ctx.close()
    assert shown, f"{path}: no figure image found"
    small = []
    for img in shown:
        meta = plotting.figure_meta((site / urlparse(img["src"]).path.lstrip("/")).read_bytes())
        px = shown_text_px(meta, img["width"])
        if meta is None:
            small.append(f"{Path(img['src']).name} ({img['alt']}): no recorded text size "
                         "(not drawn with plotting.responsive)")
        elif px < plotting.MIN_TEXT_PX or meta.get("scale") != 2:
            small.append(f"{Path(img['src']).name} ({img['alt']}): text {px:.1f} CSS px at "
                         f"{img['width']:.0f} px wide, scale {meta.get('scale')}")
    assert small == [], f"{path}: figures unreadable on a phone (need >= 9 CSS px, 2x): {small}"
