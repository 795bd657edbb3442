"""Texts written for the demo: two small corpora with a recognisable voice each, generated from
templates so that a tiny model learns their style in seconds."""

import random

_HARBOUR = {
    "time": ["At dawn", "By noon", "Towards dusk", "At the turn of the tide", "Before the fog lifted"],
    "boat": ["the Marigold", "the Grey Heron", "the little Ada", "the ferry from Skerry", "the trawler Constance"],
    "act": ["came in low with herring", "rounded the breakwater", "tied up at the north quay",
            "put out past the lighthouse", "waited on the swell"],
    "sky": ["the sky was the colour of pewter", "gulls wheeled over the fish market",
            "rain came in sideways off the headland", "the wind backed to the south-west",
            "a thin sun warmed the slipway"],
    "note": ["Harbourmaster logged the tonnage.", "Nets were mended on the wall.",
             "The bell on the buoy rang twice.", "Tea was brewed in the watch house.",
             "Nobody spoke of the storm."],
}
_KITCHEN = {
    "open": ["Warm the pan", "Start with cold butter", "Toast the spices", "Salt the water well",
             "Slice the onions thin"],
    "middle": ["until it smells of hazelnuts", "and let it sit for ten minutes", "over a low flame",
               "while the oven heats", "and taste as you go"],
    "then": ["Fold in the flour gently.", "Add the stock a ladle at a time.", "Squeeze half a lemon over it.",
             "Scatter the herbs at the very end.", "Rest the dough under a cloth."],
    "close": ["Serve it on warm plates.", "It keeps for three days.", "Grandmother never measured.",
              "Good bread makes it better.", "Leftovers are better cold."],
}


def harbour_logbook(documents: int = 80, seed: int = 1) -> str:
    rng = random.Random(seed)
    docs = []
    for _ in range(documents):
        lines = [f"{rng.choice(_HARBOUR['time'])}, {rng.choice(_HARBOUR['boat'])} {rng.choice(_HARBOUR['act'])} "
                 f"and {rng.choice(_HARBOUR['sky'])}. {rng.choice(_HARBOUR['note'])}" for _ in range(rng.randint(2, 4))]
        docs.append(" ".join(lines))
    return "\n<|endoftext|>\n".join(docs)


def kitchen_notes(documents: int = 80, seed: int = 2) -> str:
    rng = random.Random(seed)
    docs = []
    for _ in range(documents):
        steps = [f"{rng.choice(_KITCHEN['open'])} {rng.choice(_KITCHEN['middle'])}. {rng.choice(_KITCHEN['then'])}"
                 for _ in range(rng.randint(2, 4))]
        docs.append(" ".join(steps) + " " + rng.choice(_KITCHEN["close"]))
    return "\n<|endoftext|>\n".join(docs)
