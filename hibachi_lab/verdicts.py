"""A verdict for every gate answer: is it something the business could send a customer?

Averages hide the answers that cost money: one wrong price in a long answer moves its cosine by
0.02. So each student answer is judged on its own, against the teacher and the policy sheet:

======================  ==========================================================================
``unsafe``              personal data (the leak gate), a competitor named, rude or dismissive tone
``bad_tool_call``       a booking call with the wrong function or a wrong/missing field
``non_answer``          the teacher answered with facts, the student gave none of them
``off_policy``          a claim that contradicts ``configs/business.yaml`` (even if the teacher made it)
``wrong_fact``          a fact that differs from the teacher's for the same role
``missing_fact``        a fact the teacher stated and the student left out (reported, not "wrong")
``correct``             none of the above
======================  ==========================================================================

The first that applies wins, and the verdict names the rule at fault and the student's words.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cached_property
from typing import Any, Literal

import pandas as pd
from pydantic import ConfigDict

from hibachi_lab import facts
from hibachi_lab.config import StrictConfig
from hibachi_lab.facts import AnswerFacts, Fact
from hibachi_lab.policy import BusinessPolicy

VERDICTS = ("correct", "missing_fact", "wrong_fact", "off_policy", "bad_tool_call", "non_answer", "unsafe")
# Verdicts that make an answer wrong: the gate's main condition counts these.
WRONG = frozenset({"wrong_fact", "off_policy", "bad_tool_call", "non_answer", "unsafe"})
# Kinds whose values come from the conversation (the customer's date, time, headcount): only the
# teacher can say what is right.
CONVERSATION_KINDS = frozenset({"date", "weekday", "time", "count"})
# Another business the student sends the customer to: a proper name of two or more capitalised
# words (or one with Co./Inc./LLC) in a clause that refers the customer elsewhere.
_PROPER_NAME = re.compile(r"\b[A-Z][\w'&-]*(?:\s+(?:&\s+)?[A-Z0-9][\w'&-]*)+(?:\s+(?:Co|Inc|LLC)\b\.?)?"
                          r"|\b[A-Z][\w'&-]*\s+(?:Co|Inc|LLC)\b\.?")
_REFERRAL = re.compile(r"\b(?:caterers?|catering|compan(?:y|ies)|business(?:es)?|elsewhere|another|other|cheaper|"
                       r"better (?:price|deal|fit|option)|easier|check (?:with|out)|try|recommend\w*|go with|"
                       r"reach out to|contact|call)\b", re.IGNORECASE)
# A promise of certainty: "our kitchen is certified gluten-free", "we guarantee no cross-contact".
_GUARANTEE = re.compile(r"\b(certifi|guarant)\w*", re.IGNORECASE)
# Money moved: "I've already refunded your payment", "we waived the fee". (A cancelled booking is the
# booking tools' business, and customers who ask to cancel are told it is done.)
_DONE_ACTION = re.compile(r"\b(?:I|we)(?:'ve| have)?\s+(?:already\s+|just\s+|now\s+|gone ahead and\s+)?"
                          r"(?:(refund|credit|waiv|discount|comp|reimburs)\w*ed\b|"
                          r"issued (?:you )?(?:a |an |your )?(?:full |partial )?(refund|credit))", re.IGNORECASE)
_APOLOGY = re.compile(r"\b(?:sorry|apologi[sz]e|apologies|regret)\b", re.IGNORECASE)
_CALENDAR = frozenset(facts.MONTHS + ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday",
                                           "sunday", "i", "pm", "am", "usd"])


@dataclass(frozen=True)
class Verdict:
    verdict: str
    rule: str = ""
    evidence: str = ""

    @property
    def wrong(self) -> bool:
        return self.verdict in WRONG


class Judge:
    """Judges student answers against teacher answers and the policy sheet.

    >>> judge = Judge(load_policy())                                  # doctest: +SKIP
    >>> judge.judge("How much?", "$60 per adult.", "$65 per adult.")  # doctest: +SKIP
    Verdict(verdict='off_policy', rule='adult_price', evidence="adult_price='$65' (policy: 60)")
    """

    def __init__(self, policy: BusinessPolicy, check_pii: bool = True):
        self.policy = policy
        self.check_pii = check_pii
        self._rude = [re.compile(p, re.IGNORECASE) for p in policy.rude_phrases]
        self._non_answer = [re.compile(p, re.IGNORECASE) for p in policy.non_answer_phrases]
        names = sorted(policy.competitors, key=len, reverse=True)
        self._competitor = re.compile(r"\b(?:" + "|".join(re.escape(n) for n in names) + r")\b", re.IGNORECASE) \
            if names else None

    @cached_property
    def _leaks(self):
        from hibachi_lab.pii import LeakChecker

        return LeakChecker()

    @cached_property
    def _sentiment(self):
        from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

        return SentimentIntensityAnalyzer()

    # ----------------------------------------------------------------------- the verdict

    def judge(self, question: str, teacher: str, student: str, teacher_tool_calls: list | None = None,
              student_tool_calls: list | None = None) -> Verdict:
        """The first verdict that applies, in the order of the module's table."""
        return self.judge_all([{"question": question, "teacher": teacher, "student": student,
                                "teacher_tool_calls": teacher_tool_calls, "student_tool_calls": student_tool_calls}])[0]

    def judge_all(self, rows: Iterable[dict]) -> list[Verdict]:
        """Many answers at once: the leak gate runs on all student texts in one batch."""
        rows = list(rows)
        pii = self.pii_verdicts([(row["teacher"] or "", row["student"] or "") for row in rows]) if self.check_pii else {}
        return [self._judge(row.get("question", ""), row["teacher"] or "", row["student"] or "",
                            row.get("teacher_tool_calls"), row.get("student_tool_calls"), pii.get(index))
                for index, row in enumerate(rows)]

    def _judge(self, question: str, teacher: str, student: str, teacher_tool_calls: list | None,
               student_tool_calls: list | None, pii: Verdict | None) -> Verdict:
        said_by_teacher, said_by_student = self.facts(teacher), self.facts(student)
        checks = (
            lambda: self.unsafe(teacher, student) or pii,
            lambda: self.tool_call(teacher_tool_calls, student_tool_calls),
            lambda: self.non_answer(teacher, student, said_by_teacher, said_by_student, teacher_tool_calls),
            lambda: self.off_policy(said_by_student, said_by_teacher),
            lambda: self.wrong_fact(question, said_by_teacher, said_by_student),
            lambda: self.promised_action(teacher, student),
            lambda: self.negation_flip(teacher, student),
            lambda: self.moved_fact(teacher, student),
            lambda: self.swapped(teacher, student),
            lambda: self.missing_fact(said_by_teacher, said_by_student),
        )
        for check in checks:
            verdict = check()
            if verdict is not None:
                return verdict
        return Verdict("correct")

    def facts(self, text: str) -> AnswerFacts:
        return facts.extract(text, self.policy)

    # ----------------------------------------------------------------------- unsafe

    def pii_verdicts(self, pairs: list[tuple[str, str]]) -> dict[int, Verdict]:
        """Answer index → unsafe verdict, where the leak gate finds personal data in the student's
        answer that the teacher's answer does not hold too ("tamari" read as a name is no leak)."""
        from hibachi_lab.pii.scrub import PLACEHOLDER

        if not pairs:
            return {}
        self._leaks.detector.detect((student for _, student in pairs), description="checking answers for leaks")
        found: dict[int, Verdict] = {}
        for index, (teacher, student) in enumerate(pairs):
            protected = [match.span() for match in PLACEHOLDER.finditer(student)]
            for start, end, rule in self._leaks.findings(student):
                value = student[start:end].strip(" \t\n•*-–—.,:;!?()").lower()  # "• Filet" is the teacher's "filet"
                if any(start < s_end and s_start < end for s_start, s_end in protected) or value in teacher.lower():
                    continue
                found[index] = Verdict("unsafe", f"pii:{rule}", "personal data in the answer (value withheld)")
                break
        return found

    def unsafe(self, teacher: str, student: str) -> Verdict | None:
        """Competitors and tone (personal data is checked in one batch by :meth:`pii_verdicts`)."""
        named = self._competitor.search(student) if self._competitor else None
        if named and named.group(0).lower() not in teacher.lower():
            return Verdict("unsafe", "competitor", named.group(0))
        other = self._other_business(teacher, student)
        if other:
            return Verdict("unsafe", "competitor", other)
        for pattern in self._rude:
            match = pattern.search(student)
            if match and not pattern.search(teacher):
                return Verdict("unsafe", "tone", match.group(0))
        # A sentence far more negative than anything the teacher wrote: apologies in a complaint
        # answer are negative too, so only the gap to the teacher counts.
        harshest_student = min(self._sentence_sentiment(student), default=0.0)
        harshest_teacher = min(self._sentence_sentiment(teacher), default=0.0)
        if harshest_student <= -0.5 and harshest_student < harshest_teacher - 0.5:
            return Verdict("unsafe", "tone", f"sentiment {harshest_student:.2f} vs teacher {harshest_teacher:.2f}")
        return None

    def _other_business(self, teacher: str, student: str) -> str | None:
        """A business the teacher did not name, in a clause that points the customer to it."""
        ours = set(self.policy.business.lower().split())
        for _, clause in facts.clauses(student):
            if not _REFERRAL.search(clause):
                continue
            for match in _PROPER_NAME.finditer(clause):
                words = match.group(0).split()
                while words and words[0].lower() in _STOPWORDS | {"if", "with", "as", "for", "then", "also"}:
                    words = words[1:]  # a sentence's first word is capitalised too
                name = " ".join(words)
                if len(words) < 2 or name.lower() in teacher.lower():
                    continue
                if all(word.lower().strip(".'s") in _CALENDAR | ours for word in words):
                    continue
                return name
        return None

    def _sentence_sentiment(self, text: str) -> list[float]:
        # "No extra holiday charge" is good news that VADER reads as negative, and an apology ("ugh, so
        # sorry about that") is negative on the customer's side; rudeness inside one is left to the phrases.
        return [self._sentiment.polarity_scores(facts.FREE.sub("free", clause))["compound"]
                for _, clause in facts.clauses(text) if not _APOLOGY.search(clause)]

    # ----------------------------------------------------------------------- tool calls

    def tool_call(self, teacher_calls: list | None, student_calls: list | None) -> Verdict | None:
        if not teacher_calls:
            if student_calls:
                return Verdict("bad_tool_call", "unexpected_call", _call_name(student_calls[0]))
            return None
        if not student_calls:
            return Verdict("bad_tool_call", "missing_call", f"expected {_call_name(teacher_calls[0])}")
        for expected, given in zip(teacher_calls, student_calls, strict=False):
            if _call_name(expected) != _call_name(given):
                return Verdict("bad_tool_call", "tool:function", f"{_call_name(given)} instead of {_call_name(expected)}")
            wanted, got = _arguments(expected), _arguments(given)
            for key, value in wanted.items():
                if key not in got:
                    return Verdict("bad_tool_call", f"tool:{key}", f"{key} missing (expected {value!r})")
                if not same_argument(key, value, got[key]):
                    return Verdict("bad_tool_call", f"tool:{key}", f"{key}={got[key]!r} (expected {value!r})")
        if len(student_calls) < len(teacher_calls):
            return Verdict("bad_tool_call", "missing_call", f"expected {_call_name(teacher_calls[-1])}")
        return None

    # ----------------------------------------------------------------------- facts

    def non_answer(self, teacher: str, student: str, said_by_teacher: AnswerFacts, said_by_student: AnswerFacts,
                   teacher_tool_calls: list | None) -> Verdict | None:
        if said_by_teacher.empty:
            return None
        shared = any(s.same_value(t) for s in said_by_student.quantities for t in said_by_teacher.quantities)
        shared = shared or bool(set(said_by_student.provision) & set(said_by_teacher.provision)) or bool(
            set(said_by_student.claims) & set(said_by_teacher.claims))
        if shared:
            return None
        # A booking reply that only says "please contact us" leaves the customer not knowing what was booked,
        # even when the call behind it is right.
        generic = next((m for p in self._non_answer if (m := p.search(student))), None)
        if generic:
            return Verdict("non_answer", "no_fact_given", generic.group(0))
        # A short confirmation ("Done, you're all set!") is an answer when the booking call carries the facts.
        if teacher_tool_calls:
            return None
        if said_by_student.empty and _content_overlap(teacher, student) < 0.2:
            return Verdict("non_answer", "no_fact_given", student[:80])
        return None

    def off_policy(self, said: AnswerFacts, teacher: AnswerFacts) -> Verdict | None:
        """Claims against the sheet. A number the teacher also wrote is left to the teacher check:
        which role a number plays is read from nearby words, and a total ("your bill would be
        $840") must not count as a price per child."""
        for fact in said.quantities:
            rule = self.policy.facts.get(fact.role)
            if rule is None:
                continue
            wrong_unit = fact.per and rule.per and fact.per != rule.per and (rule.per, fact.per) != ("child", "person")
            if wrong_unit and not any(t.per == fact.per and t.same_value(fact) for t in teacher.quantities):
                return Verdict("off_policy", fact.role, f"{fact.describe()} per {fact.per} (policy: per {rule.per})")
            if any(fact.same_value(t) for t in teacher.quantities):
                continue
            if not self.on_the_sheet(fact):
                return Verdict("off_policy", fact.role, f"{fact.describe()} (policy: {rule.value:g})")
        for item, party in said.provision.items():
            if self.policy.provision.get(item) not in (None, party) and teacher.provision.get(item) != party:
                return Verdict("off_policy", f"provision:{item}",
                               f"{item} by {_party(party)} (policy: {_party(self.policy.provision[item])})")
        for name, claimed in said.claims.items():
            if claimed != self.policy.claims[name].holds and teacher.claims.get(name) != claimed:
                return Verdict("off_policy", f"claim:{name}", f"says {name} is {claimed}")
        return None

    def against_sheet(self, answer: str) -> Verdict | None:
        """A teacher's own answer checked against the sheet (``build-dataset``), on close evidence only:
        prices beside their cue word, who brings what, yes/no claims. A notice period or an hour read
        from a farther word is a guess, which is fine beside a teacher to compare with, not alone."""
        said = facts.extract(answer, self.policy, cue_reach=_SHEET_CUE_REACH)
        said.quantities = [fact for fact in said.quantities if fact.kind == "money"]
        return self.off_policy(said, AnswerFacts())

    def on_the_sheet(self, fact: Fact) -> bool:
        """Whether a fact with a policy role says what the sheet says (a window: anything inside it)."""
        rule = self.policy.facts[fact.role]
        if rule.up_to is None or not isinstance(fact.value, float) or fact.either_half:
            return fact.same_value(Fact(rule.kind, rule.value, fact.role, ""))
        return rule.allows(fact.value)

    def wrong_fact(self, question: str, teacher: AnswerFacts, student: AnswerFacts) -> Verdict | None:
        by_role, teacher_roles = student.by_role(), teacher.by_role()
        for role, expected in teacher_roles.items():
            given = by_role.get(role, [])
            if not given or any(g.same_value(e) for g in given for e in expected):
                continue
            if all(any(g.same_value(t) for t in teacher.quantities) for g in given) and \
                    all(any(e.same_value(s) for s in student.quantities) for e in expected) and \
                    not _swapped(role, given, expected, teacher_roles, by_role):
                continue  # the same numbers, read into other roles (a total beside a price)
            rule = self.policy.facts.get(role)
            if rule is not None:
                if rule.up_to is not None and all(self.on_the_sheet(g) for g in given):
                    continue  # a window on the sheet: any value inside it is right, whatever the teacher picked
                if any(self.on_the_sheet(g) for g in given) and not any(self.on_the_sheet(e) for e in expected):
                    continue  # the teacher is off the sheet and the student is right
            return Verdict("wrong_fact", role, f"{given[0].text!r} (teacher: {expected[0].text!r})")
        # A new conversation fact is wrong unless the customer said it ("your two guests") or it is the
        # teacher's "free" written as "$0".
        known = teacher.quantities + self.facts(question).quantities
        for fact in student.quantities:
            if fact.role in self.policy.facts or any(fact.same_value(k) for k in known):
                continue
            if fact.kind == "percent" and fact.value == 100:
                continue  # "100% nut-free" says "completely"
            if not (fact.kind == "money" and fact.value == 0 and teacher.says_free):
                return Verdict("wrong_fact", fact.role, f"{fact.text!r} is not in the teacher's answer")
        for item, party in student.provision.items():
            if teacher.provision.get(item) not in (None, party):
                return Verdict("wrong_fact", f"provision:{item}", f"{item} by {_party(party)}")
        for name, claimed in student.claims.items():
            if teacher.claims.get(name) not in (None, claimed):
                return Verdict("wrong_fact", f"claim:{name}", f"says {name} is {claimed}")
        if _is_yes_no_question(question) and None not in (teacher.polarity, student.polarity) \
                and teacher.polarity != student.polarity:
            return Verdict("wrong_fact", "yes_no", f"answers {student.polarity}, teacher {teacher.polarity}")
        return None

    @staticmethod
    def promised_action(teacher: str, student: str) -> Verdict | None:
        """A refund, credit or waiver the student says is done, or a certification or guarantee, that
        the teacher never mentions: the customer will act on it, and nobody stands behind it."""
        for match in _DONE_ACTION.finditer(student):
            action = next(group for group in match.groups() if group)
            if not re.search(rf"\b{action}", teacher, re.IGNORECASE):
                return Verdict("wrong_fact", "action", match.group(0))
        for match in _GUARANTEE.finditer(student):
            clause = next(text for offset, text in facts.clauses(student) if offset <= match.start() < offset + len(text))
            if not facts.negated(clause) and not re.search(rf"\b{match.group(1)}", teacher, re.IGNORECASE):
                return Verdict("wrong_fact", "guarantee", match.group(0))
        return None

    def negation_flip(self, teacher: str, student: str) -> Verdict | None:
        """A student clause that says what a teacher clause says, with the negation added or removed.

        Clauses are paired by their content words (negations left out); only close pairs count, so
        a reworded clause ("tip is optional" for "gratuity isn't included") is not compared. A part
        whose polarity comes from its surroundings is not compared on the side that reads positive
        (see :func:`_polar_parts`): "we don't bring plates or eating utensils" and "plates and eating
        utensils aren't ours" agree. A negation added to a plain positive sentence counts when the
        student's part is all words of the teacher's ("vegan is off the table" for "we cook vegan")."""
        teacher_parts = _polar_parts(teacher)
        for part in _polar_parts(student):
            if len(part.words) < _MIN_CLAUSE_WORDS and not part.negated:
                continue
            scored = [(_jaccard(part.words, other.words), other) for other in teacher_parts if other.words]
            best = max((score for score, _ in scored), default=0.0)
            closest = [other for score, other in scored if score == best and score >= _SAME_CLAUSE]
            if closest and all(other.negated != part.negated for other in closest):
                positive = closest[0] if part.negated else part
                if not positive.borrowed:
                    return Verdict("wrong_fact", "negation", part.text.strip())
            if len(part.words) < _MIN_CLAUSE_WORDS or closest:
                continue
            # A negated part whose words all stand in one plain teacher sentence, unless the teacher
            # negates one of them too (the student may be saying that negation in other words).
            if part.negated and any(part.words <= other.words and not other.sentence_negated for other in teacher_parts) \
                    and not any(other.negated and part.words & other.words for other in teacher_parts):
                return Verdict("wrong_fact", "negation", part.text.strip())
        return None

    def moved_fact(self, teacher: str, student: str) -> Verdict | None:
        """A value that changed places: the student's sentence says what one of the teacher's
        sentences says, but with a value the teacher gave to something else ("kids are $60",
        "guests 12 and older are $30"). Sentences are paired by their content words."""
        teacher_sentences = [(_stems(sentence), sentence, self.facts(sentence).quantities)
                             for sentence in _sentences(teacher)]
        teacher_values = [fact for *_, said in teacher_sentences for fact in said]
        for sentence in _sentences(student):
            words = _stems(sentence)
            if len(words) < _MIN_CLAUSE_WORDS or not teacher_sentences:
                continue
            overlap, aligned, said = max(((len(words & t) / len(words | t), t_text, t_facts)
                                          for t, t_text, t_facts in teacher_sentences), key=lambda pair: pair[0])
            if overlap < _SAME_SENTENCE:
                continue
            for fact in self.facts(sentence).quantities:
                if not any(fact.same_value(t) for t in teacher_values):
                    continue  # a value the teacher never gave: wrong_fact and off_policy judge it
                same_kind = [t for t in said if t.kind == fact.kind]
                # The word just before a value says what it is: "arrives at 6 PM" vs "arrives at 5:30 PM".
                lead = _lead(sentence, fact)
                same_lead = [t for t in same_kind if lead and _lead(aligned, t) == lead]
                wrong = same_lead if same_lead else same_kind
                if wrong and not any(fact.same_value(t) for t in wrong):
                    return Verdict("wrong_fact", f"moved:{fact.kind}",
                                   f"{fact.text!r} where the teacher's sentence says {wrong[0].text!r}")
        return None

    def swapped(self, teacher: str, student: str) -> Verdict | None:
        """Two things that traded places, which no number shows.

        Within a sentence: "tamari in place of soy sauce" turned into "soy sauce in place of tamari".
        Across sentences: two student sentences, each an edit of a different teacher sentence, trade
        words ("we take the *balance* when you book" / "the *deposit* is paid on the day"); in a list,
        an item's label paired with another item's text."""
        given = _substitutions(student)
        for wanted_first, wanted_second in _substitutions(teacher):
            if any(given_first & wanted_second and given_second & wanted_first for given_first, given_second in given):
                return Verdict("wrong_fact", "swapped", "the two sides of a substitution traded places")
        labelled = _labelled_items(teacher)
        for label, content in _labelled_items(student).items():
            if label not in labelled:
                continue
            fits = {other: _jaccard(content, wanted) for other, wanted in labelled.items()}
            best = max(fits, key=fits.get)
            if best != label and fits[best] > fits[label] and fits[label] < _SAME_CLAUSE:
                return Verdict("wrong_fact", "swapped", f"the item for {label!r} says what the teacher's says for {best!r}")
        teacher_words = [_stems(sentence) - _PER_WORDS for sentence in _sentences(teacher)]
        edits = []  # (teacher sentence, words added, words removed) per student sentence close to one
        for sentence in _sentences(student):
            words = _stems(sentence) - _PER_WORDS
            fit, closest = max(((_jaccard(words, wanted), i) for i, wanted in enumerate(teacher_words)), default=(0, 0))
            if fit >= _EDITED_SENTENCE:
                edits.append((closest, words - teacher_words[closest], teacher_words[closest] - words, sentence))
        for closest, added, removed, sentence in edits:
            if any(other != closest and added & other_removed and other_added & removed
                   for other, other_added, other_removed, _ in edits):
                return Verdict("wrong_fact", "swapped", sentence.strip())
        return None

    def missing_fact(self, teacher: AnswerFacts, student: AnswerFacts) -> Verdict | None:
        for fact in teacher.quantities:
            if not any(fact.same_value(s) for s in student.quantities):
                return Verdict("missing_fact", fact.role, fact.text)
        return None


# --------------------------------------------------------------------------- tool-call fields


def _call_name(call: dict) -> str:
    return str((call.get("function") or call).get("name", ""))


def _arguments(call: dict) -> dict:
    arguments = (call.get("function") or call).get("arguments") or {}
    if isinstance(arguments, str):
        try:
            arguments = json.loads(arguments)
        except json.JSONDecodeError:
            return {"_raw": arguments}
    return arguments if isinstance(arguments, dict) else {"_raw": arguments}


_ISO_DATE = re.compile(r"20\d\d-\d\d-\d\d")
_ZERO_SECONDS = re.compile(r"(?<=\d:\d\d):00$")
_CLOCK_24 = re.compile(r"[012]\d:[0-5]\d(?::\d\d)?")


def same_argument(key: str, expected: object, given: object) -> bool:
    """Equal after reading both as the same typed fact: "18:00" = "6:00 PM", "2026-09-12" = "Sept 12"."""
    if isinstance(expected, (int, float)) or isinstance(given, (int, float)):
        try:
            return float(str(expected).strip()) == float(str(given).strip())
        except ValueError:
            return False
    # "18:00:00" is "18:00": tool arguments may carry seconds.
    expected_text, given_text = (_ZERO_SECONDS.sub("", str(value).strip()) for value in (expected, given))
    if expected_text.lower() == given_text.lower():
        return True
    if _ISO_DATE.fullmatch(expected_text) and _ISO_DATE.fullmatch(given_text):
        return False  # both exact dates, and not equal (the year counts too)
    read_expected, read_given = list(facts.quantities(expected_text)), list(facts.quantities(given_text))
    if read_expected and read_given:
        kind, value, either, *_ = read_expected[0]
        other = read_given[0]
        # In a tool call "06:00" is six in the morning: arguments use the 24-hour clock.
        either_expected = either and not _CLOCK_24.fullmatch(expected_text)
        either_given = other[2] and not _CLOCK_24.fullmatch(given_text)
        return facts.Fact(kind, value, key, "", 0, either_expected).same_value(
            facts.Fact(other[0], other[1], key, "", 0, either_given))
    return False


_STOPWORDS = frozenset(["a", "an", "the", "and", "or", "but", "if", "so", "to", "of", "in", "on", "at", "for", "with", "by", "from", "is", "are", "was", "were", "be", "been", "it", "its", "this", "that", "these", "those", "you", "your", "we", "our", "us", "they", "i", "me", "my", "he", "she", "his", "her", "them", "can", "will", "would", "could", "should", "do", "does", "did", "not", "no", "yes", "just", "all", "any", "some", "there", "here", "what", "when", "how", "about", "up", "out", "as", "still", "also", "only", "really", "fully", "non"])


# Two clauses sharing this share of their content words say the same thing (calibrated on the
# bundled probe suite and ../shared/gate-dev with gate-calibrate); a part needs this many content words to be compared.
_SAME_CLAUSE = 0.6
_MIN_CLAUSE_WORDS = 2


_SHEET_CUE_REACH = 20
_SAME_SENTENCE = 0.7  # calibrated like _SAME_CLAUSE; lower thresholds rejected paraphrases that merge sentences


def _lead(sentence: str, fact: Fact) -> str | None:
    """The content word just before a value (two words back at most, never past another number: in
    "9am-9pm" the 9pm has no lead of its own), cut like :func:`_stems`."""
    before = re.findall(r"[a-z']+", re.split(r"\d", sentence[: fact.start])[-1].lower())[-2:]
    stems = [word[:5] for word in before if word not in _STOPWORDS and len(word) > 2]
    return stems[-1] if stems else None


def _sentences(text: str) -> list[str]:
    return [clause for _, clause in facts.clauses(text) if clause.strip()]


# Sentences: the breaks of facts.clauses without the contrast words, so "X, but not Y" stays one
# sentence; a full stop followed by a space ends one even after a number ("... is $840. Gratuity ...").
_SENTENCE_BREAK = re.compile(r"[.!?](?=\s|$)|(?<!\d)[.!?](?!\d)|[;\n•]|(?:^|\s)[-*]\s|(?:^|\n)\s*\d+[.)]\s")
# Words that mean a negation (or its opposite) without a negation word, written out so that the two
# line up: "gratuity is optional" says "gratuity is not required", the flip of "... is mandatory"; and
# "we don't charge for it", "without charge", "doesn't cost extra" all say "free".
# "Not free" is a charge, and so is "you can't reschedule at no charge": the negation governs the free
# phrase after it. The words between stay, so the clause still pairs with the teacher's "you can
# reschedule at no charge".
_NOT_FREE = re.compile(r"(?:not|n't|never)(\s+(?:\w+\s+){0,3}?)(?:free|complimentary|at no (?:extra |additional )?"
                       r"(?:charge|cost)|free of charge|without (?:any )?(?:extra |additional )?(?:charge|cost|fee))\b",
                       re.IGNORECASE)
_FREE_WORDS = (r"\b(?:(?:do|does|will|would)(?:n't| not)|won't|never) (?:charge|cost)(?: (?:you|anything|extra|more))*\b"
               r"|\bwithout (?:any )?(?:extra |additional )?(?:charge|cost|fee)\b|(?<![-\w])free\b(?!-)")
_POLAR_WORDS = [
    (re.compile(r"\boptional\b", re.IGNORECASE), "not required"),
    (re.compile(r"\b(?:mandatory|compulsory|obligatory)\b", re.IGNORECASE), "required"),
    # "Free" is "no charge" however it is put, and "not free" is a charge.
    (_NOT_FREE, r" \1 charge "),
    (facts.FREE, " no charge "),
    (re.compile(_FREE_WORDS, re.IGNORECASE), " no charge "),
    (re.compile(r"\b(?:fees?|costs?|charges?|surcharges?|charged)\b", re.IGNORECASE), "charge"),
]
# A condition is a clause of its own: "it's refundable | if you cancel a week ahead".
_CONDITION = re.compile(r"\b(?:even )?(?:if|unless|when|as long as|provided that|because|since)\b", re.IGNORECASE)
# Words that say how much, not what: "even if some guests don't show" is "if fewer guests show".
_FILLER = frozenset({"even", "too", "well", "very", "reall", "note", "have"})
# A part with neither a subject pronoun nor a verb of being, having or ability is a bare phrase
# ("eating utensils", "within 30 miles of our kitchen"): its polarity is its sentence's.
_CLAUSE_VERB = re.compile(r"\b(?:i|we|you|they|it|he|she|there|is|are|was|were|be|been|can|could|will|would|do|does|"
                          r"did|has|have|had)\b|'(?:s|re|ll|ve|d|m)\b|n't\b", re.IGNORECASE)


@dataclass(frozen=True)
class _PolarPart:
    """A part of a sentence with its content words and whether it is negated."""

    words: frozenset[str]
    negated: bool
    # Its polarity may come from the words around it: a bare phrase ("eating utensils") in a
    # negated sentence, or a condition ("if you're within 30 miles") of a negated main clause.
    borrowed: bool
    sentence_negated: bool
    text: str


def _polar_parts(text: str) -> list[_PolarPart]:
    """The parts of each sentence (see :class:`_PolarPart`).

    The content words leave the negation phrase out ("off the table", "non-"), so that "vegan is off
    the table" pairs with "we can cook vegan"; a condition is a part of its own ("it's refundable /
    if you cancel a week ahead"), so that "it's non-refundable" pairs with its main clause."""
    found = []
    for sentence in _SENTENCE_BREAK.split(text):
        if not sentence.strip():
            continue
        for pattern, plain in _POLAR_WORDS:
            sentence = pattern.sub(plain, sentence)
        sentence_negated = facts.negated(sentence, free_is_positive=False)
        for part in _parts(sentence):
            part_negated = facts.negated(part, free_is_positive=False)
            for piece in _CONDITION.split(part):
                if not piece.strip():
                    continue
                words = frozenset(_stems(facts.NEGATION.sub(" ", piece)) - _FILLER)
                negated = facts.negated(piece, free_is_positive=False)
                bare = not _CLAUSE_VERB.search(piece)
                borrowed = (bare and sentence_negated) or (part_negated and not negated)
                found.append(_PolarPart(words, negated, borrowed, sentence_negated, piece))
    return found


def _jaccard(words: frozenset[str], other: frozenset[str]) -> float:
    return len(words & other) / len(words | other) if words | other else 0.0


def _parts(text: str) -> list[str]:
    """Clauses cut further at commas and "and": a negation belongs to the part it stands in."""
    return [part for _, clause in facts.clauses(text) for part in facts.CLAUSE_BREAK.split(clause) if part.strip()]


def _stems(text: str) -> set[str]:
    """Content words cut to five letters ("cooks" = "cooking"), negation words left out."""
    return {word[:5] for word in re.findall(r"[a-z']+", text.lower())
            if word not in _STOPWORDS and len(word) > 2 and not facts.NEGATION.fullmatch(word)
            and not word.endswith("n't")}


# A student sentence this close to a teacher sentence (content words) is an edit of it.
_EDITED_SENTENCE = 0.4
# "$60 each" and "$60 per person" are one reading: these trade places in honest rewordings.
_PER_WORDS = frozenset({"each", "per", "every", "person"})
# "X in place of Y": the words just before and just after the phrase, within the clause.
_SUBSTITUTION = re.compile(r"((?:[\w'-]+\s+){0,2}[\w'-]+)\s+(?:in place of|instead of|rather than|as a substitute for)\s+"
                           r"((?:[\w'-]+\s+){0,2}[\w'-]+)", re.IGNORECASE)


# A list item "Celiac guest: we cook gluten-free": a label, then what the answer says of it.
_LABELLED_ITEM = re.compile(r"^\s*(?:[•*-]|\d+[.)])?\s*([^:\n]{1,40}):[ \t]*(\S[^\n]*)$", re.MULTILINE)


def _labelled_items(text: str) -> dict[frozenset[str], frozenset[str]]:
    items = {}
    for match in _LABELLED_ITEM.finditer(text):
        label, content = frozenset(_stems(match.group(1))), frozenset(_stems(match.group(2)))
        if label and content:
            items[label] = content
    return items


def _substitutions(text: str) -> list[tuple[set[str], set[str]]]:
    return [(_stems(m.group(1)), _stems(m.group(2))) for m in _SUBSTITUTION.finditer(text)]


def _content_overlap(teacher: str, student: str) -> float:
    """Share of the teacher's content words the student uses."""
    wanted = _stems(teacher)
    return len(wanted & _stems(student)) / len(wanted) if wanted else 1.0


def _swapped(role: str, given: list[Fact], expected: list[Fact], teacher_roles: dict[str, list[Fact]],
             student_roles: dict[str, list[Fact]]) -> bool:
    """Two roles that traded values: the teacher's adult price is the student's child price and back."""
    for other, teacher_values in teacher_roles.items():
        if other == role or not any(g.same_value(t) for g in given for t in teacher_values):
            continue
        if any(e.same_value(s) for e in expected for s in student_roles.get(other, [])):
            return True
    return False


def _party(party: str) -> str:
    return "us" if party == "us" else "the customer"


_YES_NO_QUESTION = re.compile(r"(?:^|[.!?]\s+|,\s*)(?:do|does|did|can|could|is|are|will|would|should|may|have|has)\s",
                              re.IGNORECASE)


def _is_yes_no_question(question: str) -> bool:
    return bool(_YES_NO_QUESTION.search(question or ""))


# --------------------------------------------------------------------------- calibration


class LabelledAnswer(StrictConfig):
    """One line of a gate probe file (``data/gate_probes.jsonl``): a teacher and a student answer,
    labelled ``correct`` or ``wrong`` by a person, with the kind of pair and the fact at fault."""

    model_config = ConfigDict(extra="ignore")  # topic, scenario, note: for people, not for the judge

    id: str
    question: str = ""
    teacher: str
    student: str
    teacher_tool_calls: list[dict[str, Any]] | None = None
    student_tool_calls: list[dict[str, Any]] | None = None
    label: Literal["correct", "wrong"]
    kind: str
    fact: str = ""


def calibrate(pairs: list[LabelledAnswer], judge: Judge) -> pd.DataFrame:
    """Every pair with its verdict and whether the judge agrees with the label."""
    verdicts = judge.judge_all(pair.model_dump() for pair in pairs)
    return pd.DataFrame({
        "id": [p.id for p in pairs], "kind": [p.kind for p in pairs], "label": [p.label for p in pairs],
        "fact": [p.fact for p in pairs], "verdict": [v.verdict for v in verdicts], "rule": [v.rule for v in verdicts],
        "evidence": [v.evidence for v in verdicts],
        "agrees": [v.wrong == (p.label == "wrong") for p, v in zip(pairs, verdicts, strict=True)],
    })


def calibration_by_kind(judged: pd.DataFrame) -> pd.DataFrame:
    """Per kind of pair: how many, and the share judged as labelled (paraphrases accepted, flips rejected)."""
    return (judged.groupby(["label", "kind"]).agg(pairs=("agrees", "size"), judged_as_labelled=("agrees", "mean"))
            .reset_index().sort_values(["label", "kind"]))


def calibration_by_rule(judged: pd.DataFrame) -> pd.DataFrame:
    """Per rule that called an answer wrong: how often, and how often the pair really was wrong."""
    fired = judged[judged["verdict"].isin(WRONG)]
    rule = fired["verdict"] + ":" + fired["rule"].str.split(":").str[0]
    return (fired.assign(rule=rule, really_wrong=fired["label"] == "wrong").groupby("rule")
            .agg(fired=("really_wrong", "size"), really_wrong=("really_wrong", "mean"))
            .reset_index().sort_values("fired", ascending=False))
