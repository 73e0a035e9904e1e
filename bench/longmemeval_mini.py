"""Six questions we wrote ourselves in the LongMemEval format (Wu et al., ICLR 2025: one
record per question with its haystack sessions, their dates, and the sessions that hold
the answer), because the real LongMemEval set cannot be downloaded here.

They show that the LongMemEval path (loading, session dates, the answer style) works end to
end; they are far too few, and too easy, to say how good a system is. ``write`` puts them
on disk in the format's JSON, which is what ``budgetmem eval --dataset longmemeval`` reads.
"""

from __future__ import annotations

import json
from pathlib import Path

# (id, type, question, answer, question date, [(session id, session date, [(role, text[, holds the answer])])], answer sessions)
QUESTIONS = [{'id': 'lme-001',
  'type': 'single-session-user',
  'question': 'What breed is my new dog?',
  'answer': 'a border collie',
  'date': '2023/06/12 (Mon) 09:00',
  'sessions': [('a1',
                '2023/05/02 (Tue) 18:10',
                [('user', 'Can you suggest a quick pasta recipe for a weeknight?'),
                 ('assistant',
                  'Try spaghetti aglio e olio: garlic, olive oil, chili flakes and parsley, ready in fifteen '
                  'minutes.'),
                 ('user', 'Sounds good, I have all of that.'),
                 ('assistant', 'Great, enjoy your dinner!')]),
               ('a2',
                '2023/05/20 (Sat) 11:45',
                [('user', 'We finally adopted a dog last weekend, a border collie named Pepper!', True),
                 ('assistant', 'Congratulations! Border collies are clever and need lots of exercise.'),
                 ('user', 'Any advice for the first month?'),
                 ('assistant', 'Keep a steady routine and start short training sessions early.')]),
               ('a3',
                '2023/06/01 (Thu) 20:30',
                [('user', 'I need tips to keep my basil plant alive on the windowsill.'),
                 ('assistant',
                  'Basil likes six hours of sun, moist but not soggy soil, and regular pinching of the top '
                  'leaves.'),
                 ('user', 'Should I fertilise it?'),
                 ('assistant', 'A diluted liquid fertiliser every two weeks in summer is enough.')])],
  'answer_sessions': ['a2']},
 {'id': 'lme-002',
  'type': 'single-session-assistant',
  'question': 'Which city did you suggest for my weekend trip?',
  'answer': 'Porto',
  'date': '2023/07/03 (Mon) 08:30',
  'sessions': [('b1',
                '2023/06/10 (Sat) 10:00',
                [('user', 'What is a good stretch for a stiff lower back after long drives?'),
                 ('assistant',
                  'The knee-to-chest stretch and the cat-cow movement both help; hold each for thirty '
                  'seconds.'),
                 ('user', "Thanks, I'll try them tonight."),
                 ('assistant', 'Take it slowly the first few times.')]),
               ('b2',
                '2023/06/18 (Sun) 16:20',
                [('user', 'I want a cheap weekend trip from Lisbon with good food. Any idea?'),
                 ('assistant',
                  'I would suggest Porto: three hours by train, great food and wine, and affordable '
                  'guesthouses.',
                  True),
                 ('user', "Nice, I'll look at trains.")]),
               ('b3',
                '2023/06/25 (Sun) 09:15',
                [('user', 'Recommend a podcast about the history of science.'),
                 ('assistant',
                  'You might like a series that tells one discovery per episode, from the telescope to '
                  'vaccines.'),
                 ('user', 'I prefer shorter episodes.'),
                 ('assistant',
                  'Then look for ones under twenty minutes; many science shows have a short format.')])],
  'answer_sessions': ['b2']},
 {'id': 'lme-003',
  'type': 'knowledge-update',
  'question': 'Where do I work now?',
  'answer': 'Northwind Labs',
  'date': '2023/09/15 (Fri) 12:00',
  'sessions': [('c1',
                '2023/03/01 (Wed) 09:00',
                [('user', 'Help me write a status update for my team at Bluefin Analytics.'),
                 ('assistant', 'Sure: start with what shipped this week, then blockers, then next steps.')]),
               ('c2',
                '2023/04/11 (Tue) 13:00',
                [('user', 'Can you suggest a quick pasta recipe for a weeknight?'),
                 ('assistant',
                  'Try spaghetti aglio e olio: garlic, olive oil, chili flakes and parsley, ready in fifteen '
                  'minutes.'),
                 ('user', 'Sounds good, I have all of that.'),
                 ('assistant', 'Great, enjoy your dinner!')]),
               ('c3',
                '2023/08/28 (Mon) 19:00',
                [('user',
                  'Big news: I left Bluefin Analytics and started at Northwind Labs on Monday.',
                  True),
                 ('assistant', 'Congratulations on the new job at Northwind Labs!'),
                 ('user', 'Thanks, it is a research role.')]),
               ('c4',
                '2023/09/02 (Sat) 10:30',
                [('user', 'I need tips to keep my basil plant alive on the windowsill.'),
                 ('assistant',
                  'Basil likes six hours of sun, moist but not soggy soil, and regular pinching of the top '
                  'leaves.'),
                 ('user', 'Should I fertilise it?'),
                 ('assistant', 'A diluted liquid fertiliser every two weeks in summer is enough.')])],
  'answer_sessions': ['c3']},
 {'id': 'lme-004',
  'type': 'temporal-reasoning',
  'question': 'When did I run my first half marathon?',
  'answer': '14 May 2023',
  'date': '2023/06/20 (Tue) 07:00',
  'sessions': [('d1',
                '2023/04/30 (Sun) 18:00',
                [('user', "I'm nervous about my first half marathon in two weeks."),
                 ('assistant', 'You have trained well; taper this week and sleep enough.')]),
               ('d2',
                '2023/05/14 (Sun) 17:30',
                [('user', 'I ran my first half marathon this morning, finished in 2 hours 5 minutes!', True),
                 ('assistant', 'Well done, that is a strong first time.'),
                 ('user', 'My legs hurt though.'),
                 ('assistant', 'Rest, hydrate and walk a bit tomorrow.')]),
               ('d3',
                '2023/06/05 (Mon) 08:00',
                [('user', 'What is a good stretch for a stiff lower back after long drives?'),
                 ('assistant',
                  'The knee-to-chest stretch and the cat-cow movement both help; hold each for thirty '
                  'seconds.'),
                 ('user', "Thanks, I'll try them tonight."),
                 ('assistant', 'Take it slowly the first few times.')])],
  'answer_sessions': ['d2']},
 {'id': 'lme-005',
  'type': 'multi-session',
  'question': 'How many instruments am I learning?',
  'answer': 'two',
  'date': '2023/10/01 (Sun) 10:00',
  'sessions': [('e1',
                '2023/08/03 (Thu) 19:00',
                [('user', 'I started piano lessons this week, any practice tips?', True),
                 ('assistant', 'Practise twenty minutes a day and use a metronome.')]),
               ('e2',
                '2023/08/21 (Mon) 20:00',
                [('user', 'Recommend a podcast about the history of science.'),
                 ('assistant',
                  'You might like a series that tells one discovery per episode, from the telescope to '
                  'vaccines.'),
                 ('user', 'I prefer shorter episodes.'),
                 ('assistant',
                  'Then look for ones under twenty minutes; many science shows have a short format.')]),
               ('e3',
                '2023/09/10 (Sun) 15:00',
                [('user', 'Besides piano, I just began learning the cello too.', True),
                 ('assistant', 'Cello and piano together are a lovely mix; keep sessions short at first.')])],
  'answer_sessions': ['e1', 'e3']},
 {'id': 'lme-006',
  'type': 'single-session-user',
  'question': 'Is my sister allergic to peanuts?',
  'answer': 'yes',
  'date': '2023/11/05 (Sun) 18:00',
  'sessions': [('f1',
                '2023/10/10 (Tue) 12:00',
                [('user', 'I need tips to keep my basil plant alive on the windowsill.'),
                 ('assistant',
                  'Basil likes six hours of sun, moist but not soggy soil, and regular pinching of the top '
                  'leaves.'),
                 ('user', 'Should I fertilise it?'),
                 ('assistant', 'A diluted liquid fertiliser every two weeks in summer is enough.')]),
               ('f2',
                '2023/10/22 (Sun) 17:00',
                [('user',
                  "I'm baking cookies for my sister's birthday but she is allergic to peanuts.",
                  True),
                 ('assistant', 'Then use sunflower seed butter and check every label for traces of peanuts.'),
                 ('user', 'Good idea.')]),
               ('f3',
                '2023/11/01 (Wed) 09:30',
                [('user', 'Can you suggest a quick pasta recipe for a weeknight?'),
                 ('assistant',
                  'Try spaghetti aglio e olio: garlic, olive oil, chili flakes and parsley, ready in fifteen '
                  'minutes.'),
                 ('user', 'Sounds good, I have all of that.'),
                 ('assistant', 'Great, enjoy your dinner!')])],
  'answer_sessions': ['f2']}]


def records() -> list[dict]:
    """The questions as LongMemEval records."""
    out = []
    for q in QUESTIONS:
        ids, dates, sessions = zip(*q["sessions"], strict=True)
        out.append({
            "question_id": q["id"], "question_type": q["type"], "question": q["question"], "answer": q["answer"],
            "question_date": q["date"], "haystack_session_ids": list(ids), "haystack_dates": list(dates),
            "haystack_sessions": [
                [{"role": t[0], "content": t[1], **({"has_answer": True} if len(t) > 2 else {})} for t in turns]
                for turns in sessions
            ],
            "answer_session_ids": q["answer_sessions"],
        })  # fmt: skip
    return out


def write(path: Path) -> Path:
    """The file at ``path``, rewritten only when its content would change (its hash is part
    of an evaluation run's identity)."""
    text = json.dumps(records(), indent=1) + "\n"
    if not path.exists() or path.read_text() != text:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return path
