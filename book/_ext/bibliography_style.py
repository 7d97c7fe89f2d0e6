"""Author-year citations that read the same in the text and in the bibliography (issue 18).

sphinxcontrib-bibtex's ``author_year`` reference style writes "Glorot and Bengio [2010]" in the text,
but the bibliography took its labels from pybtex's ``alpha`` style ("[GB10]"), so a reader could not
match one to the other. This extension registers ``course_author_year`` three times:

- a pybtex *label* style: "Glorot and Bengio, 2010", "He et al., 2015", the authors' last names as
  the text writes them (one, two, or the first "et al."), and a letter after the year when two
  works would otherwise share a label ("He et al., 2016a" and "2016b");
- a pybtex *formatting* style: pybtex's ``plain`` entries, sorted by author, year and title, with
  those labels;
- a sphinxcontrib-bibtex *reference* style: ``author_year``, whose year is the label's (with its
  letter), so the two citations of 2016 stay apart in the text too.

_config.yml selects them with ``bibtex_default_style`` and ``bibtex_reference_style``.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import pybtex.plugin
from pybtex.richtext import Text
from pybtex.style.formatting.unsrt import Style as UnsrtStyle
from pybtex.style.labels import BaseLabelStyle
from pybtex.style.template import node
from sphinxcontrib.bibtex.plugin import register_plugin
from sphinxcontrib.bibtex.style.referencing import BracketStyle, GroupReferenceStyle, PersonStyle
from sphinxcontrib.bibtex.style.referencing.basic_author_year import (
    BasicAuthorYearParentheticalReferenceStyle,
    BasicAuthorYearTextualReferenceStyle,
)
from sphinxcontrib.bibtex.style.referencing.extra_author import ExtraAuthorReferenceStyle
from sphinxcontrib.bibtex.style.referencing.extra_empty import ExtraEmptyReferenceStyle
from sphinxcontrib.bibtex.style.referencing.extra_label import ExtraLabelReferenceStyle
from sphinxcontrib.bibtex.style.referencing.extra_year import ExtraYearReferenceStyle
from sphinxcontrib.bibtex.style.template import join, join2, post_text, pre_text, reference

NAME = "course_author_year"
#: Between the authors and the year of a label: the separator of a parenthetical citation.
AUTHOR_YEAR_SEP = ", "


def _last_names(entry) -> str:
    """The authors (or editors) as the text cites them: "A", "A and B", "A et al."."""
    persons = entry.persons.get("author") or entry.persons.get("editor")
    if not persons:
        raise ValueError(f"bibliography entry {entry.key!r} has no author or editor to cite it by")
    last = pybtex.plugin.find_plugin("pybtex.style.names", "last")()
    names = [last.format(p, True).format().render_as("text") for p in persons]
    if len(names) == 1:
        return names[0]
    if len(names) == 2:
        return f"{names[0]} and {names[1]}"
    return f"{names[0]} et al."


class AuthorYearLabelStyle(BaseLabelStyle):
    """Labels "Authors, year", with a, b, ... after the year where two entries would share one."""

    def format_labels(self, sorted_entries):
        entries = list(sorted_entries)
        base = [f"{_last_names(e)}{AUTHOR_YEAR_SEP}{e.fields.get('year', 'n.d.')}" for e in entries]
        counts, seen = Counter(base), Counter()
        for label in base:
            if counts[label] > 1:
                seen[label] += 1
                label += "abcdefghijklmnopqrstuvwxyz"[seen[label] - 1]
            yield label


class AuthorYearStyle(UnsrtStyle):
    """pybtex's ``plain`` entries (``unsrt`` sorted by author, year, title) with author-year labels."""

    default_sorting_style = "author_year_title"
    default_label_style = NAME


@node
def label_year(children, data):
    """The year of the entry's label, "2016b" included, so that the text names the entry the
    bibliography lists under that label."""
    assert not children
    return Text(data["formatted_entry"].label.rsplit(AUTHOR_YEAR_SEP, 1)[-1])


@dataclass
class _Parenthetical(BasicAuthorYearParentheticalReferenceStyle):
    def inner(self, role_name: str):
        return join2(sep1=self.pre_text_sep, sep2=self.post_text_sep)[
            pre_text,
            reference[
                join(sep=self.author_year_sep)[
                    self.person.author_or_editor_or_title(full="s" in role_name), label_year
                ]
            ],
            post_text,
        ]


@dataclass
class _Textual(BasicAuthorYearTextualReferenceStyle):
    def inner(self, role_name: str):
        return join(sep=self.text_reference_sep)[
            self.person.author_or_editor_or_title(full="s" in role_name),
            join[
                self.bracket.left,
                join2(sep1=self.pre_text_sep, sep2=self.post_text_sep)[
                    pre_text, reference[label_year], post_text
                ],
                self.bracket.right,
            ],
        ]


@dataclass
class _Year(ExtraYearReferenceStyle):
    def inner(self, role_name: str):
        return reference[label_year]


@dataclass
class AuthorYearReferenceStyle(GroupReferenceStyle):
    """``{cite:p}`` "[He et al., 2016a]", ``{cite:t}`` "He et al. [2016a]", ``{cite:year}`` "2016a";
    ``{cite:author}``, ``{cite:label}`` and ``{cite:empty}`` as ``author_year`` writes them."""

    bracket: BracketStyle = field(default_factory=BracketStyle)
    person: PersonStyle = field(default_factory=PersonStyle)

    def __post_init__(self):
        self.styles.extend([
            _Parenthetical(bracket=self.bracket, person=self.person, author_year_sep=AUTHOR_YEAR_SEP),
            _Textual(bracket=self.bracket, person=self.person),
            ExtraAuthorReferenceStyle(bracket=self.bracket, person=self.person),
            ExtraLabelReferenceStyle(bracket=self.bracket),
            _Year(bracket=self.bracket),
            ExtraEmptyReferenceStyle(),
        ])
        super().__post_init__()


def setup(app):
    pybtex.plugin.register_plugin("pybtex.style.labels", NAME, AuthorYearLabelStyle)
    pybtex.plugin.register_plugin("pybtex.style.formatting", NAME, AuthorYearStyle)
    register_plugin("sphinxcontrib.bibtex.style.referencing", NAME, AuthorYearReferenceStyle)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
