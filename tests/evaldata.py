"""Small evaluation files written in each supported format (the real LongMemEval and
HotpotQA files cannot be downloaded here), shared by the evaluation tests."""

from __future__ import annotations

import json
from pathlib import Path


def write_jsonl(path: Path) -> Path:
    """Two histories, five questions with hand-checkable gold answers."""
    lines = [
        {
            "id": "ana",
            "sessions": [
                {"id": "s1", "date": "1:00 pm on 3 May, 2024", "turns": [
                    {"speaker": "Ana", "text": "I adopted a grey cat called Miso last week."},
                    {"speaker": "Ben", "text": "Lovely! Where did you find Miso?"},
                    {"speaker": "Ana", "text": "At the shelter on Rua Augusta in Lisbon."}]},
                {"id": "s2", "date": "9:00 am on 20 June, 2024", "turns": [
                    {"speaker": "Ana", "text": "I started a pottery class on Tuesdays."},
                    "Ben: Which studio?",
                    {"speaker": "Ana", "text": "Barro Studio, near the river."}]},
            ],
            "questions": [
                {"id": "ana-1", "question": "What is the name of Ana's cat?", "answer": "Miso", "category": "pets"},
                {"id": "ana-2", "question": "Where did Ana find her cat?", "answer": "the shelter on Rua Augusta",
                 "category": "pets"},
                {"id": "ana-3", "question": "Which pottery studio does Ana go to?", "answers": ["Barro Studio", "Barro"],
                 "category": "hobbies"},
            ],
        },
        {
            "id": "raj",
            "sessions": [
                {"id": "d1", "kind": "document", "text": "Raj keeps a garden. He grows tomatoes, basil and chillies."},
                {"id": "s1", "date": "2024-07-01", "turns": ["Raj: My sister Priya visits in August."]},
            ],
            "questions": [
                {"id": "raj-1", "question": "What does Raj grow?", "answer": "tomatoes, basil and chillies"},
                {"id": "raj-2", "question": "Who visits Raj in August?", "answer": "Priya", "question_date": "2024-07-02"},
            ],
        },
    ]  # fmt: skip
    path.write_text("\n".join(json.dumps(x) for x in lines) + "\n", encoding="utf-8")
    return path


def write_longmemeval(path: Path) -> Path:
    recs = [
        {
            "question_id": "q-001", "question_type": "single-session-user", "question": "What colour is my bike?",
            "answer": "red", "question_date": "2023/05/30 (Tue) 10:00",
            "haystack_session_ids": ["h1", "h2"], "haystack_dates": ["2023/05/01 (Mon) 09:00", "2023/05/20 (Sat) 18:30"],
            "haystack_sessions": [
                [{"role": "user", "content": "I just bought a red bike.", "has_answer": True},
                 {"role": "assistant", "content": "Nice, enjoy the rides!"}],
                [{"role": "user", "content": "What should I cook tonight?"}, {"role": "assistant", "content": "Try a risotto."}],
            ],
            "answer_session_ids": ["h1"],
        },
        {
            "question_id": "q-002_abs", "question_type": "temporal-reasoning", "question": "How many days ago did I buy the bike?",
            "answer": 29, "question_date": "2023/05/30 (Tue) 10:00",
            "haystack_session_ids": ["h3"], "haystack_dates": ["2023/05/01 (Mon) 09:00"],
            "haystack_sessions": [[{"role": "user", "content": "Bought a bike today!", "has_answer": True}]],
        },
    ]  # fmt: skip
    path.write_text(json.dumps(recs), encoding="utf-8")
    return path


def write_hotpotqa(path: Path) -> Path:
    recs = [
        {
            "_id": "hp-1", "input": "Which city is the birthplace of the architect of the Blue Tower?",
            "context": "Document 1:\nBlue Tower\nThe Blue Tower was designed by Marta Keller in 1961.\n\n"
                       "Document 2:\nMarta Keller\nMarta Keller (born in Basel) was a Swiss architect.\n\n"
                       "Document 3:\nRed Bridge\nA bridge in an unrelated town.",
            "answers": ["Basel"],
        },
        {"index": 7, "input": "Who wrote the novel Grey Harbour?",
         "context": "Document 1:\nGrey Harbour is a 1979 novel by Ines Duarte.", "answers": ["Ines Duarte"]},
    ]  # fmt: skip
    path.write_text(json.dumps(recs), encoding="utf-8")
    return path
