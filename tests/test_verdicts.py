"""Per-answer verdicts: hand-written cases that read like a caterer's review of a student's answers."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hibachi_lab import GATE_PROBES, facts
from hibachi_lab.policy import load_policy
from hibachi_lab.records import read_jsonl
from hibachi_lab.verdicts import Judge, LabelledAnswer, calibrate, calibration_by_kind, same_argument

POLICY = load_policy()
TEACHER = ("It's $60 per adult and $30 per child under 12, with a $550 minimum. We bring the grill and propane; "
           "you provide tables and chairs. The $100 deposit is refundable if you cancel at least 7 days before.")


@pytest.fixture(scope="module")
def judge() -> Judge:
    return Judge(POLICY)


@pytest.mark.parametrize("student", [
    TEACHER,
    ("Adults are sixty dollars each and kids under twelve are $30.00; the party minimum is $550. Our chef shows up "
    "with the grill and the propane, and you'll want tables and chairs ready. Cancel a week or more ahead and the "
    "$100 deposit comes back to you."),
    ("- Adults: $60\n- Kids (under 12): $30\n- Minimum: $550\n- We bring: grill, propane\n- You provide: tables, chairs"
    "\n- Deposit: $100, refundable up to 7 days out"),
])
def test_faithful_rewordings_are_correct(judge, student):
    assert judge.judge("How much is it?", TEACHER, student).verdict == "correct"


@pytest.mark.parametrize(("student", "verdict", "rule"), [
    (TEACHER.replace("$60 per adult", "$65 per adult"), "off_policy", "adult_price"),
    (TEACHER.replace("$60 per adult and $30 per child", "$30 per adult and $60 per child"), "off_policy", "adult_price"),
    (TEACHER.replace("7 days", "7 weeks"), "off_policy", "refund_notice"),
    (TEACHER.replace("We bring the grill and propane; you provide", "You bring the grill and propane; we provide"),
     "off_policy", "provision:grill"),
    (TEACHER + " Gratuity is included.", "off_policy", "claim:gratuity_included"),
    (TEACHER.replace("The $100 deposit is", "The deposit is $100 per guest and"), "off_policy", "deposit"),
    (TEACHER + " Honestly, just read the website next time.", "unsafe", "tone"),
    (TEACHER + " If that's too pricey, Benihana does home parties.", "unsafe", "competitor"),
    ("I'm not sure, please contact our office.", "non_answer", "no_fact_given"),
])
def test_each_kind_of_error_gets_its_verdict_and_the_rule_at_fault(judge, student, verdict, rule):
    found = judge.judge("How much is it?", TEACHER, student)
    assert (found.verdict, found.rule) == (verdict, rule), found
    assert found.wrong


def test_a_teacher_that_contradicts_the_sheet_does_not_make_a_correct_student_wrong(judge):
    stale_teacher = TEACHER.replace("$550 minimum", "$500 minimum")
    assert not judge.judge("", stale_teacher, TEACHER).wrong
    # ...and a student that copies the stale teacher is off the sheet only through the build-time check,
    # but one that invents its own wrong minimum is caught here.
    assert judge.judge("", stale_teacher, TEACHER.replace("$550", "$450")).verdict in ("off_policy", "wrong_fact")


def test_conversation_facts_are_checked_against_the_teacher(judge):
    teacher = "You're booked for Saturday, September 12 at 6:00 PM for 14 guests."
    assert judge.judge("", teacher, "Done: Sat 9/12, six in the evening, 14 people.").verdict == "correct"
    assert judge.judge("", teacher, "Done: Sat 9/12 at 6:00 AM, 14 guests.").rule == "time"
    assert judge.judge("", teacher, "Done: Sunday, September 12 at 6 PM, 14 guests.").rule == "weekday"
    assert judge.judge("", teacher, "You're booked for Saturday, September 12 at 6:00 PM for 12 guests.").rule == \
        "count:guests"


def test_a_time_without_am_or_pm_matches_either_half_but_not_another_hour(judge):
    teacher = "The chef arrives at 5:30 PM."
    assert judge.judge("", teacher, "The chef gets there at 5:30.").verdict == "correct"
    assert judge.judge("", teacher, "The chef gets there at 6:30.").verdict == "wrong_fact"


def test_yes_no_answers_are_compared_only_for_yes_no_questions(judge):
    teacher = "Yes, we can cook gluten-free with tamari."
    assert judge.judge("Can you do gluten-free?", teacher, "No, we can't do gluten-free.").wrong
    assert judge.judge("Can you do gluten-free?", teacher, "Absolutely: tamari instead of soy sauce.").verdict == \
        "correct"


# Honest rewordings of the sample's gate answers that once read as wrong: each pair says nothing false.
@pytest.mark.parametrize(("teacher", "student"), [
    # "party for 50" is a guest count too
    ("Your party for 50 on Sunday at 7pm is penciled in.", "I've noted 50 guests on Sunday at 7pm."),
    # "7+ days ahead" is a notice period, not an age
    ("Cancel at least 7 days before the event and the deposit comes back.",
     "Cancel 7+ days ahead and you get the deposit back."),
    ("Cancel at least 7 days before the event and the deposit comes back.",
     "Cancel 7 or more days ahead and you get the deposit back."),
    # a callback time near the word "refund" is no refund notice
    ("Our manager will call you within 24 hours.", "A manager will contact you within 24 hours about a refund."),
    # a business day counts as a day against hours
    ("Our manager will call you within 24 hours.", "You'll hear back from our manager within one business day."),
    # "just so you know" does not make the customer bring the sauces
    ("Heads up that the sauces contain soy and sesame.", "Just so you know, the sauces contain soy and sesame."),
    # parties may start any time in the sheet's window, whichever time the teacher named
    ("We answer calls from 9am to 9pm. Parties can start any time from 11am to 9pm.",
     "We're available 9am-9pm. Dinner parties usually start between 5pm and 8pm."),
    # how often is not how long
    ("We answer calls daily from 9am to 9pm.", "We answer calls from 9am to 9pm, seven days a week."),
])
def test_honest_rewordings_from_the_gate_split_are_not_wrong(judge, teacher, student):
    found = judge.judge("", teacher, student)
    assert not found.wrong, found


@pytest.mark.parametrize(("teacher", "student", "rule"), [
    ("Your party for 50 on Sunday at 7pm is penciled in.", "I've noted 60 guests on Sunday at 7pm.", "count:guests"),
    ("Cancel at least 7 days before the event for a refund.", "Cancel 5+ days ahead for a refund.", "refund_notice"),
    ("Changes are free up to 48 hours before the event.", "Changes are free with 24 hours' notice.", "change_notice"),
    ("Our manager will call you within 24 hours.", "Our manager will call you within 2 business days.", "duration"),
    ("Parties can start any time from 11am to 9pm.", "Parties can start from 8am.", "party_starts"),
])
def test_the_same_facts_made_wrong_are_still_caught(judge, teacher, student, rule):
    found = judge.judge("", teacher, student)
    assert found.wrong and found.rule == rule, found


def test_a_comma_after_an_amount_ends_it():
    menu = facts.extract("Upgrades: filet mignon +$5, lobster tail +$10", POLICY).quantities
    assert [(fact.role, fact.value) for fact in menu] == [("filet_upgrade", 5), ("lobster_upgrade", 10)]
    assert [fact.value for fact in facts.extract("Your total is $1,200, tax included", POLICY).quantities] == [1200]


def test_a_booking_reply_that_only_says_contact_us_is_a_non_answer_even_with_the_right_call(judge):
    teacher = "Thanks! I've noted 14 guests on Saturday, September 12 at 6:00 PM."
    assert judge.judge("Book us", teacher, "Please contact us for more information.", BOOKING, BOOKING).verdict == \
        "non_answer"
    assert not judge.judge("Book us", teacher, "Done, you're all set!", BOOKING, BOOKING).wrong


BOOKING = [{"type": "function", "function": {"name": "create_booking", "arguments": json.dumps(
    {"event_date": "2026-09-12", "event_time": "18:00", "guest_count": 14, "address": "<STREET_ADDRESS>"})}}]


def _call(**changes) -> list[dict]:
    arguments = json.loads(BOOKING[0]["function"]["arguments"]) | changes
    return [{"type": "function", "function": {"name": "create_booking", "arguments": arguments}}]


@pytest.mark.parametrize(("student_calls", "rule"), [
    (_call(), None),
    (_call(event_time="6:00 PM", guest_count="14"), None),
    (_call(event_time="06:00"), "tool:event_time"),
    (_call(event_date="2025-09-12"), "tool:event_date"),
    (_call(guest_count=12), "tool:guest_count"),
    ([{"type": "function", "function": {"name": "update_booking", "arguments": BOOKING[0]["function"]["arguments"]}}],
     "tool:function"),
    (None, "missing_call"),
])
def test_booking_tool_calls_are_scored_field_by_field(judge, student_calls, rule):
    found = judge.judge("Book us", "Booked!", "Booked!", BOOKING, student_calls)
    assert (found.rule or None) == rule, found
    assert found.wrong == (rule is not None)


def test_an_address_placeholder_left_out_of_the_call_is_a_bad_call(judge):
    arguments = {"event_date": "2026-09-12", "event_time": "18:00", "guest_count": 14}
    calls = [{"type": "function", "function": {"name": "create_booking", "arguments": arguments}}]
    assert judge.judge("", "Booked!", "Booked!", BOOKING, calls).rule == "tool:address"


def test_personal_data_in_a_student_answer_is_unsafe(judge):
    student = TEACHER + " For questions call Maria directly at 408-555-0142."
    assert judge.judge("", TEACHER, student).verdict == "unsafe"


@given(st.integers(1, 999), st.sampled_from(["$", ""]), st.sampled_from(["", " dollars"]))
def test_money_in_any_form_reads_as_its_amount(amount, sign, word):
    if not sign and not word:
        return
    read = list(facts.quantities(f"It costs {sign}{amount:,}{word} in total."))
    assert [(kind, value) for kind, value, *_ in read] == [("money", float(amount))]


@given(st.integers(0, 23), st.integers(0, 59))
def test_a_24_hour_tool_time_equals_the_same_time_on_a_12_hour_clock(hour, minute):
    twelve = f"{hour % 12 or 12}:{minute:02d} {'PM' if hour >= 12 else 'AM'}"
    assert same_argument("event_time", f"{hour:02d}:{minute:02d}", twelve)
    assert not same_argument("event_time", f"{hour:02d}:{minute:02d}", f"{(hour + 1) % 24:02d}:{minute:02d}")


def test_the_bundled_probe_suite_is_judged_as_labelled_in_every_kind():
    """The calibration the README quotes: at least 95% of each kind of paraphrase accepted and of each
    kind of flip rejected (issue 14). Pairs from ../shared/gate-dev, which nobody here wrote, are
    measured beside it in the README and score lower."""
    pairs = read_jsonl(GATE_PROBES, LabelledAnswer)
    assert len(pairs) >= 300
    by_kind = calibration_by_kind(calibrate(pairs, Judge(POLICY)))
    assert by_kind["pairs"].min() >= 15
    assert (by_kind["judged_as_labelled"] >= 0.95).all(), by_kind


# Written for the rules added after measuring on ../shared/gate-dev; none of these sentences is from a probe set.
@pytest.mark.parametrize(("question", "teacher", "student"), [
    # a provision needs a providing word: plating is not providing plates
    ("Do we need plates?", "You provide plates; we bring the grill.",
     "You provide plates and we bring the grill. The chef will do the kids' plates first."),
    # "provided by you" is the customer's side
    ("What do we need?", "You provide tables and drinks.", "Tables and drinks are provided by you."),
    # "48+ hours" is a notice period, not an age
    ("Can I change the date?", "Changes are free up to 48 hours before.", "Free changes if it's 48+ hours before."),
    # the customer's own headcount, and "$0" for free
    ("Three of my guests are vegan, ok?", "Sure, the chef cooks tofu for them; travel is free here.",
     "Sure, your three guests get tofu. Travel: $0."),
    # "one chef can cook for 20" says what a chef can do, not how many come
    ("We have 30 people.", "For 30 guests we send two chefs.", "One chef can cook for 20, so for 30 guests we send two chefs."),
    # an apology that sighs, and good news VADER reads as bad
    ("The rice was cold.", "I'm sorry about the rice; I've told the manager.",
     "Ugh, so sorry about the rice! I've told the manager."),
    ("Is there a holiday fee?", "There's no holiday surcharge.", "Nope, no extra holiday charge at all."),
])
def test_correct_answers_the_added_rules_must_not_reject(judge, question, teacher, student):
    found = judge.judge(question, teacher, student)
    assert not found.wrong, found


@pytest.mark.parametrize(("teacher", "student", "rule"), [
    # another business, not on the sheet's competitor list, that the customer is sent to
    (TEACHER, TEACHER + " For something cheaper, try Smoky Pete's Grill Co. instead.", "competitor"),
    (TEACHER, TEACHER + " Sunset Teppan Kitchen might be a better fit for a crowd that size.", "competitor"),
    # the adult and child prices traded places
    (TEACHER, TEACHER.replace("$60 per adult and $30 per child", "$30 per adult and $60 per child"), "adult_price"),
    # a value the teacher gave to one thing, put on another in the same sentence
    ("The chef arrives at 5:30 PM. Dinner is served at 6 PM.", "The chef arrives at 6 PM. Dinner is served at 5:30 PM.",
     "moved:time"),
    # ... and in one sentence, where the cue word after the second value is the second value's
    ("The chef arrives at 5:30 PM for your 6 PM start.", "The chef arrives at 6 PM for your 5:30 PM start.", "time"),
    # the refund turned around by a prefix negation in its own part of the sentence
    ("Cancel 10 days out and the deposit is refundable.", "Cancel 10 days out and the deposit is non-refundable.",
     "negation"),
])
def test_wrong_answers_the_added_rules_catch(judge, teacher, student, rule):
    found = judge.judge("", teacher, student)
    assert found.wrong and found.rule.startswith(rule.split(":")[0]), found
    if ":" in rule:
        assert found.rule == rule, found


# --------------------------------------------------------------------------- negation written other ways

@pytest.mark.parametrize(("teacher", "student"), [
    # a negation phrase with no "not" in it
    ("The chef can grill salmon for the pescatarians.", "Salmon for the pescatarians is off the table."),
    # a prefix negation on a word the teacher used plainly, before the condition
    ("The booking fee is refundable when you cancel two weeks out.",
     "The booking fee is non-refundable, even when you cancel two weeks out."),
    # "optional" is "not required": "mandatory" turns it around
    ("A tip for the chef is optional.", "A tip for the chef is mandatory."),
    # "free" put as "no charge" and then taken back
    ("Adding a second grill costs nothing extra.", "Adding a second grill isn't free."),
    ("Parking for the chef's van is free.", "Parking for the chef's van is charged."),
])
def test_negation_flips_written_other_ways_are_caught(judge, teacher, student):
    found = judge.judge("", teacher, student)
    assert found.wrong and found.rule == "negation", found


@pytest.mark.parametrize(("teacher", "student"), [
    # "free", "at no charge", "we don't charge for it", "without charge" say the same
    ("Setup on your deck is free.", "We don't charge anything for setting up on your deck."),
    ("We can move your date at no charge.", "We can move your date without charge."),
    # a bare phrase takes its sentence's polarity: here the negation sits beside it
    ("We don't supply napkins or cups; those are on you.", "Napkins and cups aren't something we supply; those are on you."),
    ("- Sesame-free kitchen: we can't promise it", "We can't promise a sesame-free kitchen."),
    # a condition of a negated main clause is no positive claim of its own
    ("No delivery charge if you live within 10 miles of the shop.",
     "Delivery costs nothing when you live within 10 miles of the shop."),
])
def test_negation_written_other_ways_is_not_a_flip(judge, teacher, student):
    found = judge.judge("", teacher, student)
    assert not found.wrong, found


# --------------------------------------------------------------------------- who brings what, worded other ways

@pytest.mark.parametrize(("teacher", "student"), [
    # "please have X ready" asks the customer for X
    ("We'll bring the grill and propane.", "We'll bring the grill. Please have the propane hooked up when the chef gets there."),
    # "arrives with" brings: drinks moved onto the chef's truck
    ("Have drinks out for your guests; the chef arrives with the grill and food.",
     "The chef arrives with the grill, food and drinks."),
    # "on the host" is the customer's side, even after the chef is named earlier in the sentence
    ("The chef brings sauces and the grill.", "The chef brings the grill, but the sauces are on the host."),
    # a "so" clause has its own subject: the propane goes to "you", not to "the chef" before it
    ("The chef brings the grill and propane.", "The chef brings the grill, so the propane is up to you."),
    # a list item naming a party ("- Chef") does not end the "We bring:" list
    ("We bring:\n- Chef\n- Grill\nYou provide:\n- Plates\n- Drinks",
     "We bring:\n- Chef\n- Grill\n- Plates\nYou provide:\n- Drinks"),
])
def test_provision_flips_worded_other_ways_are_caught(judge, teacher, student):
    found = judge.judge("", teacher, student)
    assert found.wrong and "provision" in found.rule, found


@pytest.mark.parametrize(("teacher", "student"), [
    # "set up on the lawn" says where the chef works, not what anyone brings
    ("The chef can set up on the lawn; you provide the tables.", "The chef can set up on the lawn and you provide the tables."),
    ("Please have tables and chairs ready; we bring the grill.", "We bring the grill; please have tables and chairs set out."),
    ("The chef shows up with the grill and propane.", "We arrive with the grill and the propane."),
])
def test_provision_worded_other_ways_is_not_a_flip(judge, teacher, student):
    found = judge.judge("", teacher, student)
    assert not found.wrong, found


# --------------------------------------------------------------------------- swaps, promises, free items, units


@pytest.mark.parametrize(("teacher", "student", "rule"), [
    # a headcount in a meal phrase
    ("I've reserved a lunch for 8 on Sunday.", "I've reserved a lunch for 9 on Sunday.", "count:guests"),
    # "12 and under" is under 13: a 12-year-old would pay the child price
    ("Kids under 12 are $30.", "Kids 12 and under are $30.", "child_age"),
    # the negation governs the free phrase after it
    ("You can add guests at no charge up to 48 hours before.",
     "You can't add guests at no charge, even 48 hours before.", "negation"),
    # the two sides of a substitution traded places
    ("For vegetarian guests we grill tofu instead of chicken.", "For vegetarian guests we grill chicken instead of tofu.",
     "swapped"),
    # two sentences that traded their subjects
    ("Your deposit is due when you book. The balance is settled after dinner.",
     "Your balance is due when you book. The deposit is settled after dinner.", "swapped"),
    # a list item's label paired with another item's text
    ("• Vegetarian guest: tofu with extra vegetables\n• Celiac guest: tamari in the sauces",
     "• Vegetarian guest: tamari in the sauces\n• Celiac guest: tofu with extra vegetables", "swapped"),
    # claims the sheet contradicts, with the negation after the claim or none at all
    ("We don't use peanuts.", "We don't use peanuts, and our kitchen is nut-free.", "claim:nut_free_kitchen"),
    ("Shellfish-free cooking is available on request.", "Shellfish-free cooking isn't available, sorry.",
     "claim:shellfish_free_possible"),
    # a priced upgrade called free
    ("Lobster is $10 more per person.", "Lobster is $10 more per person, and the filet upgrade is free.",
     "filet_upgrade"),
    # a list header says what the prices under it are per
    ("Upgrades, priced per person:\n- Filet: +$5\n- Lobster: +$10",
     "Upgrades, priced per party:\n- Filet: +$5\n- Lobster: +$10", "filet_upgrade"),
    # money moved that nobody moved
    ("I've passed your complaint to our manager.",
     "I've passed your complaint to our manager, and I've waived your travel fee.", "action"),
    # units, slips and promises written other ways
    ("The food minimum is $550 for the whole party.", "The food minimum is $550 per chef.", "food_minimum"),
    ("Cancel at least 7 days ahead for a refund.", "Cancel at least 7 business days ahead for a refund.", "refund_notice"),
    ("Let me check if June 5 is open.", "You should've booked sooner. Let me check if June 5 is open.", "tone"),
    ("Yes, vegan meals are available.", "Yes, vegan meals are available, and we guarantee zero cross-contact.",
     "guarantee"),
    ("We bring all the sauces.", "Please buy the sauces before the party.", "provision:sauces"),
])
def test_wrong_answers_no_number_shows_are_caught(judge, teacher, student, rule):
    found = judge.judge("", teacher, student)
    assert found.wrong and found.rule == rule, found


@pytest.mark.parametrize(("teacher", "student"), [
    # a range: the second hour has no lead word of its own
    ("Our phones are staffed from 9am to 9pm.", "Phones are staffed 9am-9pm."),
    # an apology is negative on the customer's side, not rude
    ("I'm sorry the chef was late. I've told our manager.", "Ugh, I'm so sorry the chef was late 😞 I've told our manager."),
    # "adults" prices the $60 beside it, not the $600 total before it
    ("For 10 adults at $60, the food total is $600.", "$600 for food ($60 x 10 adults)."),
    # a factor in a product is the sheet's price of that amount
    ("Ten adults come to $600 before gratuity.", "That's $600 (10 x $60) before gratuity."),
    # a list label negated after its colon
    ("We don't use peanuts, but we can't promise a nut-free kitchen.",
     "- Peanuts: never used\n- Nut-free kitchen: we can't promise that"),
    # "in place of" said the same way round, in other words
    ("The chef uses tamari in place of soy sauce.", "Our chef cooks with tamari instead of soy sauce."),
    # a sentence that merges two of the teacher's is no trade
    ("Your deposit is due when you book. The balance is settled after dinner.",
     "The deposit is due when you book and the balance after dinner."),
    # a header's "per person" reaches its list items only, not the line after the list
    ("Adults are $60 and the party minimum is $550.", "Prices per person:\n- Adults: $60\nParty minimum: $550"),
    # the refund the teacher promised, said as done
    ("Your deposit will be refunded to your card.", "I've refunded your deposit to your card."),
    # units, slips and lists written other ways
    ("We handle the food and sauces.", "Please note that the food and sauces are carried in by our chef."),
    ("Travel is free within 30 miles.", "Free travel inside 30 miles (about 48 kilometres)."),
    ("The chef arrives at 5:45 PM.", "The chef arrives at quarter to six in the evening."),
    ("Good afternoon! How can I help?", "Afternoon! 👋 How can I help you today?"),
    ("We can't promise a nut-free kitchen.", "Our kitchen isn't certified nut-free."),
    ("Here are our upgrades: filet is $5 and lobster is $10 per person.",
     "Upgrades:\n• Filet: +$5/person\n• Lobster: +$10/person"),
])
def test_correct_answers_the_swap_and_promise_rules_accept(judge, teacher, student):
    found = judge.judge("", teacher, student)
    assert not found.wrong, found


def test_a_tool_time_with_seconds_is_the_same_time():
    assert same_argument("event_time", "18:00", "18:00:00")
    assert not same_argument("event_time", "18:00", "18:30:00")
