"""Labelled transcripts for the default map derived from GESTURES (bitHuman's example names).

Each case is (utterance, the gesture it must trigger or None). The negatives are the traps of
substring matching: a keyword hidden inside a longer word.
"""

from __future__ import annotations

WAVE = "mini_wave_hello"
LAUGH = "laugh_react"
NOD = "talk_head_nod_subtle"
LOVE = "blow_kiss_heart"

CASES: list[tuple[str, str | None]] = [
    # keywords hidden inside other words: never a gesture
    ("Is this the right way?", None),
    ("That's a highlight of the trip.", None),
    ("My eyes are tired today.", None),
    ("Yesterday was a long day.", None),
    ("I'm thinking about it.", None),
    ("Which one should I choose?", None),
    ("The shipping was fast.", None),
    ("We should hire someone for that.", None),
    ("I grew up in Michigan and Ohio.", None),
    ("Philosophy was my favourite class.", None),
    ("The heyday of radio is over.", None),
    ("The club changed its byelaws.", None),
    ("She bought a lolly for her son.", None),
    ("What a lovely glove.", None),
    ("Yesenia will join us later.", None),
    ("Keep your eyes on the road.", None),
    ("I'm not sure about that.", None),
    ("That's not funny at all.", None),
    ("Ha, that's a fair point.", None),
    ("Aha, I see what you mean.", None),
    ("The chateau has a thin wall.", None),
    ("Shall we go to the shop?", None),
    ("今日はいい天気ですね。", None),
    ("Das ist hier sehr schön.", None),
    ("Il fait beau aujourd'hui.", None),
    ("Check the hyphen-separated list.", None),
    # greetings and goodbyes
    ("Hi there!", WAVE),
    ("HELLO", WAVE),
    ("hello, how are you?", WAVE),
    ("Hiii!", WAVE),
    ("Okay, bye!", WAVE),
    ("Good morning, everyone.", WAVE),
    ("See you tomorrow.", WAVE),
    ("Take care!", WAVE),
    # laughter
    ("hahaha", LAUGH),
    ("Ha-ha!", LAUGH),
    ("ha ha ha, good one", LAUGH),
    ("HAHA that's so funny", LAUGH),
    ("that's so funny", LAUGH),
    ("That\u2019s funny!", LAUGH),
    ("thats funny", LAUGH),
    ("LOL", LAUGH),
    ("\U0001f602\U0001f602\U0001f602", LAUGH),
    # agreement
    ("Yes!", NOD),
    ("yeah, exactly", NOD),
    ("Yesss", NOD),
    ("Of course I can help.", NOD),
    # love
    ("I love you.", LOVE),
    ("Love it \u2764\ufe0f", LOVE),
    # several keywords: the earliest wins
    ("Hello! Haha, yes.", WAVE),
    ("Haha, hello.", LAUGH),
    ("Yes, hi.", NOD),
    ("I love that, haha", LOVE),
    # other scripts and forms
    ("\u00a1Hola! \u00bfQu\u00e9 tal?", WAVE),
    ("Bonjour \u00e0 tous", WAVE),
    ("Tsch\u00fcss!", WAVE),
    ("Adi\u00f3s, amigo.", WAVE),
    ("\u3053\u3093\u306b\u3061\u306f\u3001\u5143\u6c17\u3067\u3059\u304b", WAVE),
    ("\u4f60\u597d\uff01", WAVE),
    ("\u54c8\u54c8\u54c8\uff0c\u592a\u597d\u7b11\u4e86", LAUGH),
    ("\u0425\u0410-\u0425\u0410", LAUGH),
    ("\uff28\uff45\uff4c\uff4c\uff4f", WAVE),
    ("Je t\u2019aime", LOVE),
    ("S\u00ed, claro.", NOD),
]
