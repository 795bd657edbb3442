"""Texts written for the demo: two corpora with a recognisable voice each, generated from a small
grammar so that a tiny model learns their style in seconds.

Why a grammar of single words and short phrases rather than whole stock sentences: a model trained
on a few hundred fixed sentences learns to recite them (its samples were found word for word in
its data), and is then so sure of every next token that a watermark has nowhere to hide. Slots of
ten to twenty interchangeable words give millions of sentences of which the corpus holds a few
thousand, so the model learns the voice and writes sentences of its own (the model card's
memorisation figures show it), with real choices left at each slot.
"""

import random

# Fine-tunes of the built-in base (imprint-base): LoRA adapters (the base's default method) with the
# data's token rows, at the base's LoRA rate (2e-3, 10-step warmup, so the first steps do not undo
# its pretraining). 256-token windows give the models a 256-token context, room for a 200-token
# output. The corpora are varied and the version is the last evaluation that lowered the validation
# loss by 0.05 or more, so the models write sentences of their own instead of reciting their data: on
# Kitchen Notes a smaller step (0.01) kept step 150, whose samples copied 10.8 % of their 8-grams,
# where step 100 copies 8.1 % (97 % English words either way; Harbour Logbook keeps step 150).
DEMO_HYPERPARAMETERS = {"steps": 160, "batch_size": 4, "context_length": 256, "warmup_steps": 10,
                        "sample_every": 50, "sample_count": 2, "sample_prompt": "", "sample_max_new_tokens": 60,
                        "checkpoint_every": 100, "seed": 42, "early_stopping_patience": 2, "early_stopping_min_delta": 0.05}

_HARBOUR = {
    "time": ["At dawn", "By noon", "Towards dusk", "At midnight", "Before first light", "After the squall",
             "At low water", "At high water", "On the morning tide", "Late in the evening", "At six bells",
             "Just after breakfast", "Before the fog lifted", "In the grey hour", "At the turn of the tide",
             "Soon after dawn", "Under a low moon", "Before the bell", "At slack water", "In the first rain",
             "Well past noon", "When the lamps were lit", "At the change of watch", "On a flat calm",
             "In a rising wind", "Towards evening", "An hour before dusk"],
    "boat": ["the Marigold", "the Grey Heron", "the little Ada", "the Constance", "the Puffin", "the Kittiwake",
             "the Brave Ellen", "the old Tern", "the Saltmarsh", "the Bonny Jean", "the Curlew", "the Morning Star",
             "the Fulmar", "the Good Intent", "the ferry from Skerry", "the pilot cutter",
             "the Silver Darling", "the Hope of Leith", "the Dunlin", "the Sea Pink", "the Annie Laurie", "the Guillemot",
             "the Plover", "the Northern Light", "the Fair Maid", "the mail boat", "the dredger", "the Oystercatcher"],
    "move": ["came in past", "rounded", "tied up at", "put out from", "drifted towards", "anchored off",
             "limped into", "sailed past", "cleared", "beached below", "warped along", "stood off",
             "crept along", "swung round", "was towed to", "made fast at", "slipped past", "turned back from",
             "ran for", "lay alongside", "came away from", "idled by"],
    "place": ["the breakwater", "the north quay", "the lighthouse", "the fish market", "the slipway",
              "the harbour mouth", "the old pier", "the sandbar", "the coal wharf", "the lifeboat station",
              "the customs house", "the headland", "the ice house", "the east jetty", "the chapel steps",
              "the west basin", "the tide mill", "the net lofts", "the boatyard", "the salt pans", "the inner harbour",
              "the ropewalk", "the old fort", "the fuel berth", "the herring sheds", "the mussel beds"],
    "cargo": ["herring", "mackerel", "coal", "timber", "salt", "crab pots", "lobsters", "wool", "slate",
              "barley", "nets", "ice", "cod", "whisky", "potatoes", "rope",
              "oats", "lime", "haddock", "peat", "flour", "oysters", "tar", "canvas", "apples", "eels", "mail"],
    "weather": ["wind", "fog", "rain", "swell", "sky", "tide", "sea", "sleet", "mist", "sun", "glass", "cloud"],
    "turned": ["backed to the south", "thickened", "eased", "rose", "fell away", "turned grey", "cleared",
               "came in hard", "went quiet", "hung low", "veered west", "held steady", "dropped"],
    "over": ["over the headland", "off the point", "across the bay", "along the shore", "above the town",
             "past the bar", "out by the rocks", "on the wall"],
    "crew": ["the harbourmaster", "old Tom", "the pilot", "the cooper", "two deckhands", "the skipper",
             "the boy Davey", "Mrs Pryce", "the coastguard", "the net menders", "the watchman", "the mate",
             "the lock keeper", "old Agnes", "the customs man", "the carter", "the engineer", "the ferryman",
             "the fishwives", "young Will", "the parson", "the blacksmith"],
    "act": ["logged the tonnage", "mended nets on the wall", "rang the bell", "brewed tea in the watch house",
            "counted the boxes", "checked the moorings", "said nothing of the storm", "painted the bollards",
            "swept the quay", "read the glass", "lit the lamps", "wrote up the book", "coiled the lines",
            "tarred the hull", "hauled the dinghy up", "scrubbed the steps", "sorted the catch", "mended a sail",
            "weighed the crates", "sang at the capstan", "cleared the drains", "fed the gulls", "patched the roof"],
    "count": ["Two", "Three", "Forty", "A dozen", "Eleven", "Sixty", "Nine", "A hundred", "Seven", "Twenty",
              "Five", "Eighteen"],
    "unit": ["boxes", "barrels", "crates", "baskets", "sacks", "tons", "bundles", "carts"],
    "went": ["went ashore at", "were landed at", "were stacked on", "waited on", "were sold at",
             "were weighed at", "lay on", "were carried up from"],
    "wait": ["waited on the swell", "rode at anchor", "lay idle", "took on water", "dried her sails",
             "swung on her chain", "waited for the pilot"],
}
_HARBOUR_SENTENCES = [
    "{time}, {boat} {move} {place} with {cargo}.",
    "The {weather} {turned} {over}, and {crew} {act}.",
    "{crew_cap} {act} while {boat} {wait}.",
    "{count} {unit} of {cargo} {went} {place}.",
    "{time}, the {weather} {turned} and {boat} {wait}.",
    "{boat_cap} {move} {place}; {crew} {act}.",
]

_KITCHEN = {
    "open": ["Warm the pan", "Start with cold butter", "Toast the spices", "Salt the water well",
             "Slice the onions thin", "Soak the beans", "Rinse the rice", "Grate the cheese", "Whisk the eggs",
             "Chop the parsley", "Melt the sugar", "Crush the garlic", "Heat the oven", "Peel the pears",
             "Dice the carrots", "Scald the milk", "Roast the peppers", "Trim the beans", "Pick the thyme", "Zest the orange",
             "Knead the dough", "Wash the leeks", "Core the apples", "Skin the tomatoes", "Brown the meat"],
    "how": ["until it smells of hazelnuts", "for ten minutes", "over a low flame", "while the oven heats",
            "and taste as you go", "until golden", "without stirring", "in a wide bowl", "by hand",
            "with a wooden spoon", "until it just trembles", "overnight", "until soft",
            "in a heavy pot", "until the kitchen smells sweet", "for half an hour", "on the back of the stove",
            "until it coats the spoon", "in small batches", "with the window open", "until it sighs", "gently"],
    "ing": ["flour", "stock", "lemon", "the herbs", "cream", "the dough", "butter", "honey", "vinegar",
            "the apples", "a pinch of salt", "pepper", "the milk", "the lentils", "mustard", "the greens",
            "nutmeg", "the raisins", "breadcrumbs", "the walnuts", "sour cream", "the barley", "treacle", "ginger",
            "the leeks", "the egg yolks", "a splash of cider", "the stock cubes", "the currants"],
    "verb": ["Fold in", "Add", "Squeeze over", "Scatter", "Stir in", "Pour in", "Brush on", "Spoon over",
             "Beat in", "Crumble in", "Sift in", "Drizzle",
             "Grate in", "Toss in", "Rub in", "Lay on", "Spread", "Dust with", "Mash in", "Trickle in"],
    "when": ["at the very end", "a little at a time", "before it boils", "once it thickens", "off the heat",
             "just before serving", "while still warm", "in two batches", "when the edges brown",
             "after an hour", "when it bubbles", "as it cools", "before the guests come", "once the onions soften",
             "when it stops spitting", "at the last minute", "while you wait"],
    "close": ["Serve it on warm plates.", "It keeps for three days.", "Grandmother never measured.",
              "Good bread makes it better.", "Leftovers are better cold.", "Eat it outside if you can.",
              "The children always asked for more.", "Nobody writes this one down.", "Wash up as you go."],
    "person": ["Grandmother", "Aunt May", "My mother", "The neighbour", "Uncle Bert", "Our cook"],
    "said": ["always said", "used to say", "swore", "insisted", "told me"],
    "advice": ["never to rush the onions", "that cold hands make good pastry", "to salt early",
               "that a dull knife is dangerous", "to trust the nose, not the clock", "to warm the plates",
               "that butter forgives everything", "to keep the lid on"],
}
_KITCHEN_SENTENCES = [
    "{open} {how}.",
    "{verb} {ing} {when}.",
    "{open}, then {verb_low} {ing} {how}.",
    "{person} {said} {advice}.",
    "{verb} {ing} and {ing2} {when}.",
]


def _fill(template: str, slots: dict, rng: random.Random) -> str:
    values = {name: rng.choice(options) for name, options in slots.items()}
    values.update({f"{name}_cap": value[0].upper() + value[1:] for name, value in list(values.items())})
    values.update({f"{name}_low": value[0].lower() + value[1:] for name, value in list(values.items())})
    values.update({f"{name}2": rng.choice([o for o in options if o != values[name]] or options)
                   for name, options in slots.items()})
    return template.format(**values)


def _corpus(slots: dict, sentences: list[str], documents: int, seed: int, tail: list[str] | None = None) -> str:
    rng = random.Random(seed)
    docs = []
    for _ in range(documents):
        lines = [_fill(rng.choice(sentences), slots, rng) for _ in range(rng.randint(3, 6))]
        if tail:
            lines.append(rng.choice(tail))
        docs.append(" ".join(lines))
    return "\n<|endoftext|>\n".join(docs)


def harbour_logbook(documents: int = 400, seed: int = 1) -> str:
    return _corpus(_HARBOUR, _HARBOUR_SENTENCES, documents, seed)


def kitchen_notes(documents: int = 400, seed: int = 2) -> str:
    return _corpus(_KITCHEN, _KITCHEN_SENTENCES, documents, seed, tail=_KITCHEN["close"])
