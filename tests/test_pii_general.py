"""General rules of the scrubber, each with hand-written examples (none from an evaluation set):
how people write names, addresses and phones, and which words a caterer needs kept."""

from __future__ import annotations

import pytest

from hibachi_lab import pii
from hibachi_lab.cli import DEFAULT_PII


@pytest.fixture(scope="module")
def scrubber() -> pii.Scrubber:
    return pii.Scrubber(pii.PiiConfig.from_yaml(DEFAULT_PII))


def found(scrubber: pii.Scrubber, text: str) -> list[tuple[str, str]]:
    scrubber.detector.detect([text])
    spans = pii.conversation_spans([text], scrubber.detector, propagate=False)[0]
    return [(span.entity_type, text[span.start : span.end]) for span in spans]


def scrubbed(scrubber: pii.Scrubber, text: str) -> str:
    turn = {"conversation_id": "g1", "turn_index": 0, "timestamp": "2026-10-01T10:00:00-07:00", "query": text,
            "responses": [], "final_response": "ok"}
    return scrubber.scrub_turns([turn])[0]["query"]


@pytest.mark.parametrize("text, name", [
    ("Tyler called earlier about the deposit.", "Tyler"),           # a common first name opening a sentence
    ("Megan, can you confirm the chef for Saturday?", "Megan"),
    ("Brandon will bring the cake at 6.", "Brandon"),
])
def test_a_first_name_opening_a_sentence_is_a_name(scrubber, text, name):
    assert ("PERSON", name) in found(scrubber, text)


@pytest.mark.parametrize("text, kept", [
    ("Will you bring the grill?", "Will"),
    ("Mark it down for 20 guests.", "Mark"),
    ("Hope the weather holds!", "Hope"),
    ("Grant access to the side yard, please.", "Grant"),
])
def test_an_everyday_word_opening_a_sentence_is_no_name(scrubber, text, kept):
    assert scrubbed(scrubber, text).startswith(kept)


@pytest.mark.parametrize("text, name", [
    ("Tell the chef to wave at Linda when he arrives.", "Linda"),  # Linda is also a town
    ("Please send the invoice to Kelly, she pays.", "Kelly"),
    ("Say hi to Megan and Rosa for us.", "Rosa"),
])
def test_a_common_name_after_to_at_or_and_is_a_person_not_a_town(scrubber, text, name):
    assert ("PERSON", name) in found(scrubber, text)


@pytest.mark.parametrize("text, place", [
    ("Do you drive out to Tracy for parties?", "Tracy"),
    ("We moved from Portugal last year, party is in Fresno.", "Portugal"),
    ("My in-laws fly in from Austria for the birthday.", "Austria"),
])
def test_a_town_after_a_verb_of_going_and_a_country_stay(scrubber, text, place):
    assert place in scrubbed(scrubber, text)


@pytest.mark.parametrize("text, names", [
    ("Guests of honour: Odalys, Brianna, Jordan and Tremaine.", ["Odalys", "Brianna", "Jordan", "Tremaine"]),
    ("Seats for Marisol, Tucker and Kenji please.", ["Marisol", "Tucker", "Kenji"]),
])
def test_every_name_in_a_list_of_people_is_a_name_even_a_town_or_a_rare_word(scrubber, text, names):
    people = [value for kind, value in found(scrubber, text) if kind == "PERSON"]
    assert all(name in people for name in names), people


def test_a_name_before_a_unit_word_keeps_its_words_and_the_unit_is_the_address(scrubber):
    result = found(scrubber, "Ship it to Mrs. Odalys Brennan Apt. 12, 40 Pine St")
    assert ("PERSON", "Odalys Brennan") in result
    assert not any(kind == "PERSON" and "Apt" in value for kind, value in result)


def test_a_list_of_towns_stays(scrubber):
    assert "Gilroy and Hollister" in scrubbed(scrubber, "Do you cover Salinas, Gilroy and Hollister?")


@pytest.mark.parametrize("text, name", [
    ("Marisol: is the chef still coming at 5?\nMe: yes", "Marisol"),          # a speaker's label
    ("Tremaine, could you send the deposit link again?", "Tremaine"),          # someone addressed
    ("Zbyszko, can I pay by card?", "Zbyszko"),                               # ... in no name list
    ("Please put Kenji's birthday on the cake.", "Kenji"),                    # what only a person has
    ("Send the receipt to Ondine's email, not mine.", "Ondine"),
    ("And your last name? Okonkwo", "Okonkwo"),
    ("Invoice to Marisol T Brennan please", "Marisol T Brennan"),             # a middle initial
])
def test_names_shown_by_how_they_are_written(scrubber, text, name):
    assert ("PERSON", name) in found(scrubber, text)


@pytest.mark.parametrize("text", [
    "Note: bring the propane\nTotal: $540\nDate: 10/2",
    "Also, can you bring extra fried rice?",
    "Fresno, can you come on the 14th?",
    "Today's menu: chicken and steak",
    "Plan B: Tuesday at 6",
])
def test_labels_openers_and_towns_are_not_taken_for_names(scrubber, text):
    assert not [value for kind, value in found(scrubber, text) if kind == "PERSON"]


def test_a_rare_word_joined_by_and_to_a_found_name_is_a_name(scrubber):
    people = [value for kind, value in found(scrubber, "The menu was planned by Quennell and Richardson.")
              if kind == "PERSON"]
    assert "Quennell" in people


@pytest.mark.parametrize("text, town", [
    ("Ship the sauce to Ondine Brennan\nRua das Flores 48\nAlverca\nPortugal 2615", "Alverca"),   # a block's town line
    ("Address: Hauptgasse 14\nApt. 3\nHeiligkreuz\nSwitzerland 9015", "Heiligkreuz"),
    ("we are at 40 Pine St, Keswick", "Keswick"),                                            # after a street line
    ("our place is Brekkustig 80, Hafnarfjordur", "Hafnarfjordur"),
    ("Traffic on the Dunmore bridge is bad, the chef should leave early", "Dunmore"),
    ("We are coming from North Bergen for the party", "North Bergen"),
    ("I am in Keswick until Friday, the party is in Fresno", "Keswick"),
])
def test_towns_in_address_blocks_and_place_shapes_are_kept(scrubber, text, town):
    assert town in scrubbed(scrubber, text)


def test_a_name_heading_an_address_block_is_still_a_name(scrubber):
    result = scrubbed(scrubber, "Ship the sauce to Ondine Brennan\nRua das Flores 48\nAlverca\nPortugal 2615")
    assert "Ondine" not in result and "Rua das Flores 48" not in result


@pytest.mark.parametrize("text, street", [
    ("my address: Kivi tee 14, Tartu", "Kivi tee 14"),                      # lower-case street type after the name
    ("ship to Sorrento utca 7 please", "Sorrento utca 7"),
    ("send it to 88 Maple põik 3", "88 Maple põik 3"),                      # a number before the name too
    ("mail to 3120 P.O. Box 77", "3120 P.O. Box 77"),
    ("we are at the corner of Kessler Ave and Ridgeback Rd", "Ridgeback Rd"),  # a corner pins a home down
    ("we are at the corner of Kessler Ave and Ridgeback Rd", "Kessler Ave"),
    ("my son is on USNS Mercy\nFPO AP 96672", "USNS Mercy\nFPO AP 96672"),  # military post
    ("it's Torvaldsgade 12 street, second floor", "Torvaldsgade 12"),
])
def test_street_lines_in_more_shapes(scrubber, text, street):
    assert ("STREET_ADDRESS", street) in found(scrubber, text) or street not in scrubbed(scrubber, text)


def test_a_street_named_without_a_number_stays_for_the_travel_fee(scrubber):
    assert "Pleasant Grove Blvd" in scrubbed(scrubber, "we're just off Pleasant Grove Blvd in Roseville")


@pytest.mark.parametrize("text, phone", [
    ("Zip 80331\n0151 234 56 78 mobile", "0151 234 56 78"),                  # a postal code above is no part of it
    ("You can call 48 21 07 after six", "48 21 07"),                        # six digits beside a phone word
    ("52 90 33 office, 52 90 34 fax", "52 90 33"),
])
def test_phones_in_blocks_and_short_local_numbers(scrubber, text, phone):
    assert phone not in scrubbed(scrubber, text)


@pytest.mark.parametrize("text", ["Table 12 30 45 is by the pool", "we need 20 30 or 40 skewers"])
def test_six_digits_without_a_phone_word_stay(scrubber, text):
    assert scrubbed(scrubber, text) == text


@pytest.mark.parametrize("text, value", [
    ("My driver's license number is qr5521907", "qr5521907"),        # lower case after the cue
    ("need my Ohio license? T118-2290-4417", "T118-2290-4417"),
    ("WA DL WDLK8M3Z4P2Q for the rental", "WDLK8M3Z4P2Q"),            # letters and few digits
    ("I'm the host, Odalys (b. 3/9/71), call me anytime", "3/9/71"),  # "b." for born
])
def test_licences_and_birth_dates_in_more_shapes(scrubber, text, value):
    assert value not in scrubbed(scrubber, text)


@pytest.mark.parametrize("text", ["my licence expires 2027, is that ok", "the license plate is on the truck"])
def test_licence_words_without_a_number_leave_the_text(scrubber, text):
    assert scrubbed(scrubber, text) == text


def test_a_birth_date_given_as_the_answer_to_a_question_is_found(scrubber):
    assert "5/14/1968" not in scrubbed(scrubber, "what's your date of birth? 5/14/1968")
    assert "5/14/1968" not in scrubbed(scrubber, "You asked for my date of birth. It's 5/14/1968")
    assert "10/17/2026" in scrubbed(scrubber, "the birthday party is on 10/17/2026")


@pytest.mark.parametrize("text, name", [
    ("Karen Wojciechowska here about Saturday", "Karen Wojciechowska"),       # a first name, then a word English lacks
    ("Host: Megan Oyelaran-Bright", "Megan Oyelaran-Bright"),
    ("Invoice for Tadeusz K. Wrzesniak please", "Tadeusz K. Wrzesniak"),       # an initial between two rare words
])
def test_full_names_from_a_first_name_and_a_rare_word(scrubber, text, name):
    assert name not in scrubbed(scrubber, text)


def test_a_name_found_once_is_replaced_where_it_opens_a_line(scrubber):
    turns = [{"conversation_id": "g2", "turn_index": 0, "timestamp": "2026-10-01T10:00:00-07:00",
              "query": "Hi, this is Emily Brennan, booking for 20.\nEmily: also, vegetarian option?",
              "responses": [], "final_response": "Emily, yes we have tofu."}]
    result = scrubber.scrub_turns(turns)[0]
    assert "Emily" not in result["query"] and "Emily" not in result["final_response"]


def test_a_town_listed_with_or_after_a_town_is_a_town_but_a_greeted_person_is_not(scrubber):
    assert "Lodi or Tracy" in scrubbed(scrubber, "Do you drive out to Lodi or Tracy?")
    assert "Tracy" not in scrubbed(scrubber, "Welcome to Stockton, Tracy! How many guests?")


def test_the_scrubber_runs_spacy_lean_and_plain_presidio_keeps_its_full_pipeline():
    from hibachi_lab.pii.scrub import _shared_nlp_engine

    config = pii.PiiConfig.from_yaml(DEFAULT_PII)
    lean = pii.build_analyzer(config).nlp_engine.nlp["en"]
    full = pii.build_default_analyzer(config).nlp_engine.nlp["en"]
    assert lean.pipe_names == ["ner"] and "lemmatizer" in full.pipe_names
    assert _shared_nlp_engine(config.spacy_model) is not _shared_nlp_engine(config.spacy_model, lean=True)


@pytest.mark.parametrize("text, name, tagged", [
    ("Tyler called earlier about the deposit.", "Tyler", True),  # a top first name, as common as a word: ask spaCy
    ("Hi, we need a chef for Saturday.", None, False),           # no first name opens a sentence: nothing to tag
])
def test_the_tagger_runs_only_on_texts_where_a_proper_noun_decides(scrubber, monkeypatch, text, name, tagged):
    from hibachi_lab.pii import names

    calls = []
    real = names._proper_noun_starts
    monkeypatch.setattr(names, "_proper_noun_starts", lambda artifacts: calls.append(1) or real(artifacts))
    fresh = pii.Scrubber(pii.PiiConfig.from_yaml(DEFAULT_PII)).detector  # nothing cached yet
    fresh.detect([text])
    assert bool(calls) is tagged
    if name:
        assert ("PERSON", name) in found(scrubber, text)


def test_a_name_seen_in_lower_case_inside_an_email_still_finds_it_capitalised(scrubber):
    """'faith' read inside faith25@... must not stand in for 'Faith' when the name is looked for again."""
    turns = [{"conversation_id": "g3", "turn_index": 0, "timestamp": "2026-10-01T10:00:00-07:00",
              "query": "change time to 6pm please, booking under faith25@hotmail.com", "responses": [],
              "final_response": "Done!"},
             {"conversation_id": "g3", "turn_index": 1, "timestamp": "2026-10-01T10:05:00-07:00",
              "query": "It's under Faith Owens, phone (707) 637-3603.", "responses": [],
              "final_response": "Done, Faith! We can change the date up to 48 hours ahead."}]
    result = scrubber.scrub_turns(turns)
    assert "Faith" not in result[1]["final_response"]
    assert "change the date" in result[1]["final_response"]


@pytest.mark.parametrize("text, value, entity", [
    ("call me on 415 - 555 - 0162 after work", "415 - 555 - 0162", "PHONE_NUMBER"),    # spaced dashes
    ("the keypad, #7782, is by the garage", "#7782", "ACCESS_CODE"),                   # a comma after the cue
    ("the back door is 45*61", "45*61", "ACCESS_CODE"),                             # a star inside the code
    ("buzz 3104 at the lobby", "3104", "ACCESS_CODE"),
    ("Regards,\nMarisol Ybarra\n88 Harbor Bay W\nAlameda, CA 94502", "88 Harbor Bay W", "STREET_ADDRESS"),
    ("I'm Summer! the bday girl", "Summer", "PERSON"),                                # a menu word given as a name
    ("See you there, Basil!", "Basil", "PERSON"),                                     # hailed at the end
    ("Congrats to Tanner, see you Saturday", "Tanner", "PERSON"),
    ("garage keypad 4*0*8*8 then enter", "4*0*8*8", "ACCESS_CODE"),                # stars between every digit
    ("we will request the deposit at paypal.me/RowanQ88", "paypal.me/RowanQ88", "PAYMENT_HANDLE"),  # no email
])
def test_values_written_the_ways_customers_write_them(scrubber, text, value, entity):
    assert (entity, value) in found(scrubber, text)


@pytest.mark.parametrize("text, kept", [
    ("We're in Redlands 92373. 40 guests on the 5th", "92373. 40"),   # a ZIP, a period, a count: no phone
    ("my cell (415) 555-0162. 12 adults", "12 adults"),               # the count after a phone stays
    ("we live in Woodlock 95382, come by", "95382"),                  # "lock" inside a town is no code cue
    ("so this is kind of a big party", "kind"),                       # a lower-case word after "this is"
    ("Thanks!\nOdalys Brennan\nRN, MSN", "RN, MSN"),                  # letters after a name in a signature
    ("the party is at 4410 Redwood Way Garden Grove 92840", "Garden Grove 92840"),  # a town without a comma
    ("we're at 1520 Alameda Street #4, San Jose CA", "San Jose CA"),
])
def test_words_next_to_values_stay(scrubber, text, kept):
    assert kept in scrubbed(scrubber, text)


# A name written in lower case is found a word at a time; the demo's own sample was left with "it's under
# jon <PERSON_1>" and "i'm <PERSON_1> villa" (found by a learned name detector tried on the leak gate).
@pytest.mark.parametrize("text, left", [
    ("it's under lena stone, phone 408 555 0199", ["lena", "stone"]),
    ("this is oscar english, 408 555 0199", ["oscar", "english"]),
    ("cancel the party under brenda lake please", ["brenda", "lake"]),
    ("hey it's darnell booker, we need two more chairs", ["darnell", "booker"]),
])
def test_a_lower_case_name_is_scrubbed_whole(scrubber, text, left):
    after = scrubbed(scrubber, text)
    assert "<PERSON_1>" in after and not any(word in after for word in left), after


@pytest.mark.parametrize("text, kept", [
    ("thanks jose, see you late saturday", "late saturday"),
    ("we live in san jose ca and love it", "san jose ca"),
    ("hi it's maria here, small party of 12", "here, small party"),
])
def test_the_word_beside_a_lower_case_name_stays_when_it_is_no_name(scrubber, text, kept):
    assert kept in scrubbed(scrubber, text)
