"""An embedded demo dataset: customer-support messages with planted label noise.

Generated deterministically from a seed with hand-written templates and slot fillers
(English, no external data). Seven intents with moderately imbalanced class sizes; a
known share of labels is flipped (uniformly to another class) and a known share of
rows is *genuinely ambiguous*: the message carries requests of two intents and its
true label is one of them. The truth columns let tests and the demo measure how well
label issues are found.
"""
from __future__ import annotations

import functools
import os
import string
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv

from hardmine.store.atomic import atomic_file

#: intents, largest first, with their share of rows (true labels)
CLASSES = (
    "billing",
    "shipping",
    "technical_issue",
    "refund",
    "account_access",
    "product_question",
    "cancellation",
)
CLASS_WEIGHTS = (0.20, 0.18, 0.16, 0.14, 0.13, 0.11, 0.08)

# --------------------------------------------------------------------------- slot fillers
SLOTS: dict[str, tuple[str, ...]] = {
    "product": (
        "wireless earbuds", "smart watch", "coffee grinder", "standing desk", "air purifier",
        "robot vacuum", "hiking backpack", "laptop stand", "electric kettle", "yoga mat",
        "gaming headset", "baby monitor", "desk lamp", "phone case", "running shoes", "blender",
        "portable speaker", "e-reader", "security camera", "office chair", "water bottle",
        "mechanical keyboard", "rice cooker", "fitness tracker", "camping tent",
    ),
    "payment": (
        "credit card", "debit card", "PayPal account", "Visa card", "Mastercard", "bank account",
        "Apple Pay", "company card", "Amex",
    ),
    "plan": ("basic", "family", "pro", "business", "annual", "monthly", "student", "starter"),
    "carrier": ("UPS", "FedEx", "DHL", "USPS", "Royal Mail", "Canada Post", "the courier", "the local post office"),
    "weekday": ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"),
    "month": (
        "January", "February", "March", "April", "May", "June", "July", "August",
        "September", "October", "November", "December",
    ),
    "country": (
        "Canada", "Germany", "Brazil", "Japan", "Australia", "Mexico", "France", "India",
        "Spain", "the UK", "Italy", "Poland",
    ),
    "device": (
        "iPhone", "Android phone", "iPad", "Windows laptop", "MacBook", "Chromebook",
        "Pixel", "Samsung tablet", "Linux desktop",
    ),
    "browser": ("Chrome", "Firefox", "Safari", "Edge", "Opera"),
    "feature": (
        "calendar", "dashboard", "reports", "settings", "photo backup", "shared folders",
        "chat", "offline mode", "sync", "voice notes",
    ),
    "email": ("gmail", "outlook", "yahoo", "work", "icloud", "hotmail"),
    "social": ("Google", "Apple", "Facebook", "Microsoft"),
    "accessory": (
        "USB-C chargers", "my car stereo", "Alexa", "Google Home", "third-party straps",
        "a 220V outlet", "wireless charging pads", "my old dock",
    ),
}

# --------------------------------------------------------------------------- templates
TEMPLATES: dict[str, tuple[str, ...]] = {
    "billing": (
        "I was charged {amount} twice on my {payment} for order {order}.",
        "Why does my invoice for {month} show {amount} instead of the usual price?",
        "There is an unexpected charge of {amount} on my statement from you.",
        "My {plan} plan price went up without notice, can you explain the bill?",
        "Can you send me a copy of the invoice for order {order}?",
        "The payment with my {payment} keeps getting declined at checkout.",
        "I need to update the billing address before the next invoice goes out.",
        "You billed me for the {plan} plan but I'm on a cheaper one.",
        "How do I change the {payment} you charge every month?",
        "The tax on my last bill looks wrong, it should be less than {amount}.",
        "I see a pending authorization of {amount} that never went away.",
        "Is there a way to get a receipt with my company VAT number on it?",
        "My {payment} was charged {amount} for a renewal I didn't expect.",
        "The discount code {code} was not applied to my invoice.",
        "Why am I paying {amount} a month when the website says the {plan} plan is cheaper?",
        "My bank flagged a charge of {amount} from your company as suspicious.",
        "Can I get the {month} invoice addressed to my employer instead?",
    ),
    "shipping": (
        "My order {order} still hasn't arrived after {days} days.",
        "The tracking number from {carrier} shows no updates since {weekday}.",
        "Can I change the delivery address for order {order}? It hasn't shipped yet.",
        "The {product} was delivered to the wrong address.",
        "How long does shipping to {country} usually take?",
        "The tracking says delivered but there is no package at my door.",
        "Do you offer express delivery for the {product}?",
        "{carrier} left a note saying they couldn't deliver my parcel.",
        "My order was split into two shipments and only one of them came.",
        "When will order {order} leave the warehouse?",
        "The box arrived crushed and the {product} inside is dented.",
        "Can I pick up my order from {carrier} instead of home delivery?",
        "The estimated delivery date keeps moving, now it says {weekday}.",
        "Do you ship to PO boxes in {country}?",
        "It's been {days} days and {carrier} still lists my {product} as in transit.",
        "Customs in {country} is holding my package, what do I need to send them?",
    ),
    "refund": (
        "I returned the {product} {days} days ago and still haven't received my refund.",
        "I'd like a refund for order {order}, the {product} isn't what I expected.",
        "How long does it take for a refund of {amount} to show up on my {payment}?",
        "I was promised a refund of {amount} but only got part of it back.",
        "Please send me a return label for the {product}.",
        "What's your return policy for items that were opened?",
        "The refund went to my old {payment}, which is closed now.",
        "I want to return the {product} and get my money back.",
        "Your agent approved my refund on {weekday} but nothing has happened since.",
        "Is return shipping free or will it be deducted from my refund?",
        "Can I swap the {product} for store credit instead of a refund?",
        "The {product} arrived in the wrong color, I'd like to send it back for a refund.",
        "Your store refused my return of the {product} even though it's within {days} days.",
        "I got the refund email for order {order} but the money never came.",
    ),
    "account_access": (
        "I can't log in to my account, it keeps saying my password is incorrect.",
        "The password reset email never arrives at my {email} address.",
        "My account got locked after too many login attempts.",
        "I'm not receiving the two-factor code on my phone anymore.",
        "How do I change the email address I use to sign in?",
        "Someone else may have accessed my account, I saw a login from {country}.",
        "I lost the phone number linked to my account and can't verify it's me.",
        "The verification link you sent says it has expired.",
        "I signed up with {social} and now I can't sign in with my email and password.",
        "Please help me recover my username, I forgot which one I used.",
        "My account shows as deactivated but I never closed it.",
        "Can you merge my two accounts into one login?",
        "The sign-in page on my {device} says my session is invalid every time.",
        "I changed my password yesterday and now neither the old nor the new one works.",
    ),
    "technical_issue": (
        "The app crashes every time I open {feature} on my {device}.",
        "I get error {error} when I try to sync my data.",
        "The website won't load on {browser}, it just shows a blank page.",
        "Notifications stopped working after the latest update on my {device}.",
        "The {product} won't connect to wifi no matter what I try.",
        "Uploading a file fails halfway with error {error}.",
        "The {feature} page has been extremely slow since {weekday}.",
        "The firmware update on my {product} got stuck at {pct} percent.",
        "Search returns nothing even though I have plenty of data in {feature}.",
        "Exporting to CSV produces a corrupted file.",
        "Bluetooth pairing between the {product} and my {device} keeps dropping.",
        "In dark mode the text in {feature} is invisible.",
        "The {device} app freezes on the loading screen since the last update.",
        "{browser} shows error {error} whenever I open the {feature} tab.",
        "The {product} keeps rebooting by itself every few minutes.",
    ),
    "product_question": (
        "Does the {product} work with {accessory}?",
        "What's the difference between the {plan} plan and the premium one?",
        "Is the {product} waterproof?",
        "Does the {product} come with a warranty, and for how long?",
        "What sizes and colors does the {product} come in?",
        "Can the {feature} feature export to PDF?",
        "How long does the battery of the {product} last on a full charge?",
        "Will the {product} be back in stock before {month}?",
        "Does the {plan} plan include {feature}?",
        "What materials is the {product} made of?",
        "Is the {product} suitable for someone living in {country}, voltage-wise?",
        "Can I use {feature} on more than one {device} at the same time?",
        "Is there a newer model of the {product} coming out this year?",
    ),
    "cancellation": (
        "I want to cancel my {plan} subscription.",
        "Please cancel order {order} before it ships.",
        "How do I turn off automatic renewal of my membership?",
        "I'd like to close my account permanently and delete my data.",
        "Can I pause my subscription for {months} months instead of cancelling?",
        "What happens to my files if I cancel the {plan} plan?",
        "I no longer need the service, please end my contract.",
        "Is there a cancellation fee if I leave before {month}?",
        "Cancel my free trial please, I don't want to continue.",
        "I'm moving to {country} and want to stop my {plan} subscription.",
        "Please don't renew my plan next {month}, I'm done with it.",
    ),
}

#: intent pairs whose cues are mixed in ambiguous rows (both orders are used)
AMBIGUOUS_PAIRS = (
    ("billing", "refund"),
    ("billing", "cancellation"),
    ("shipping", "refund"),
    ("account_access", "technical_issue"),
    ("cancellation", "refund"),
    ("product_question", "technical_issue"),
    ("shipping", "product_question"),
    ("account_access", "billing"),
    ("shipping", "cancellation"),
)
CONNECTORS = (" Also, ", " And ", " On top of that, ", " Plus, ", " Separately, ", " Besides that, ", " ")

PREFIXES = (
    "", "", "", "", "Hi, ", "Hello, ", "Hey there. ", "Hi team, ", "Good morning. ", "Quick question: ",
    "Hello support, ", "Hi, hoping you can help. ", "Urgent: ", "So, ",
)
SUFFIXES = (
    "", "", "", "", " Thanks.", " Thank you!", " Please help.", " Any update?", " This is urgent.",
    " Thanks in advance.", " I'd appreciate a quick reply.", " Cheers.", " Regards, {name}.",
    " This is the second time I'm writing.",
)
NAMES = ("Ana", "Ben", "Chloe", "Dev", "Emma", "Farid", "Grace", "Hiro", "Ines", "Jonas", "Kofi", "Lena")
FILLERS = ("honestly ", "basically ", "just ", "really ", "actually ", "kind of ")


#: generated (not listed) slot values
_GENERATED: dict[str, Callable[[np.random.Generator], str]] = {
    "amount": lambda r: f"{('$', '€', '£')[r.integers(3)]}{r.integers(5, 400)}.{r.integers(0, 100):02d}",
    "order": lambda r: ("#", "A-", "order no. ")[r.integers(3)] + str(r.integers(100_000, 99_999_999)),
    "days": lambda r: str(r.integers(3, 31)),
    "months": lambda r: str(r.integers(1, 7)),
    "pct": lambda r: str(r.integers(5, 100)),
    "error": lambda r: ("E", "0x", "ERR-")[r.integers(3)] + str(r.integers(100, 9999)),
    "code": lambda r: "".join(chr(65 + c) for c in r.integers(0, 26, 4)) + str(r.integers(10, 99)),
    "name": lambda r: NAMES[r.integers(len(NAMES))],
}


@functools.lru_cache(maxsize=None)
def _fields(template: str) -> tuple[str, ...]:
    return tuple(f for _, f, _, _ in string.Formatter().parse(template) if f)


def _fill(template: str, rng: np.random.Generator) -> str:
    vals = {}
    for f in _fields(template):
        if f not in vals:
            vals[f] = _GENERATED[f](rng) if f in _GENERATED else SLOTS[f][rng.integers(len(SLOTS[f]))]
    return template.format(**vals)


def _typo(word: str, rng: np.random.Generator) -> str:
    if len(word) < 4 or not word.isalpha():
        return word
    i = int(rng.integers(1, len(word) - 2))
    kind = rng.integers(3)
    if kind == 0:  # swap two letters
        return word[:i] + word[i + 1] + word[i] + word[i + 2 :]
    if kind == 1:  # drop a letter
        return word[:i] + word[i + 1 :]
    return word[:i] + word[i] + word[i:]  # double a letter


def _surface_noise(text: str, rng: np.random.Generator) -> str:
    """Typos, casing, fillers and dropped punctuation, as in real support messages."""
    words = text.split(" ")
    if rng.random() < 0.35:
        for _ in range(int(rng.integers(1, 3))):
            j = int(rng.integers(len(words)))
            words[j] = _typo(words[j], rng)
    if rng.random() < 0.15 and len(words) > 3:
        j = int(rng.integers(1, len(words) - 1))
        words.insert(j, FILLERS[rng.integers(len(FILLERS))].strip())
    text = " ".join(words)
    r = rng.random()
    if r < 0.18:
        text = text.lower()
    elif r < 0.21:
        text = text.upper()
    if rng.random() < 0.15:
        text = text.rstrip(".!?")
    return text


def _message(cls: str, rng: np.random.Generator) -> str:
    t = TEMPLATES[cls]
    return _fill(t[rng.integers(len(t))], rng)


def _lower_first(s: str) -> str:
    return s[:1].lower() + s[1:] if s[:2] != s[:2].upper() else s


def _compose(body: str, rng: np.random.Generator) -> str:
    prefix = PREFIXES[rng.integers(len(PREFIXES))]
    body = _lower_first(body) if prefix.endswith((", ", ": ")) else body[:1].upper() + body[1:]
    text = prefix + body + _fill(SUFFIXES[rng.integers(len(SUFFIXES))], rng)
    return _surface_noise(text, rng)


def _class_sizes(n: int) -> np.ndarray:
    w = np.asarray(CLASS_WEIGHTS) / np.sum(CLASS_WEIGHTS)
    sizes = np.floor(w * n).astype(int)
    rest = n - sizes.sum()
    sizes[np.argsort(-(w * n - sizes), kind="stable")[:rest]] += 1
    return sizes


def generate_demo(
    n_rows: int = 3000, noise_rate: float = 0.08, ambiguous_rate: float = 0.06, seed: int = 0
) -> pa.Table:
    """Generate the demo table: ``id``, ``text``, ``label`` (given, noisy), ``true_label``, ``is_noisy``, ``is_ambiguous``.

    Exactly ``round(noise_rate * n_rows)`` labels are flipped (uniformly to another class)
    and ``round(ambiguous_rate * n_rows)`` rows mix two intents. Texts are unique.
    Deterministic for a seed.
    """
    if not isinstance(n_rows, (int, np.integer)) or n_rows < len(CLASSES):
        raise ValueError(f"n_rows={n_rows!r}: need an integer of at least {len(CLASSES)} (one row per class)")
    for name, rate in (("noise_rate", noise_rate), ("ambiguous_rate", ambiguous_rate)):
        if not 0.0 <= rate < 1.0:
            raise ValueError(f"{name}={rate!r} must be in [0, 1)")
    rng = np.random.default_rng(seed)
    k = len(CLASSES)
    true = np.repeat(np.arange(k), _class_sizes(n_rows))
    rng.shuffle(true)
    n_amb = round(ambiguous_rate * n_rows)
    is_amb = np.zeros(n_rows, dtype=bool)
    is_amb[rng.choice(n_rows, n_amb, replace=False)] = True
    pairs_of = {c: [p for p in AMBIGUOUS_PAIRS if CLASSES[c] in p] for c in range(k)}

    texts: list[str] = []
    seen: set[str] = set()
    for i in range(n_rows):
        cls = CLASSES[true[i]]
        for _attempt in range(100):
            if is_amb[i]:
                pair = pairs_of[true[i]][rng.integers(len(pairs_of[true[i]]))]
                other = pair[1] if pair[0] == cls else pair[0]
                parts = [_message(cls, rng), _message(other, rng)]
                if rng.random() < 0.5:
                    parts.reverse()
                conn = CONNECTORS[rng.integers(len(CONNECTORS))]
                body = parts[0] + conn + (_lower_first(parts[1]) if conn.strip() else parts[1])
            else:
                body = _message(cls, rng)
            text = _compose(body, rng)
            if text.strip() and text not in seen:
                break
        else:  # pragma: no cover - the template space is far larger than any sensible n_rows
            raise ValueError(f"could not generate {n_rows} unique texts; lower n_rows")
        seen.add(text)
        texts.append(text)

    n_noisy = round(noise_rate * n_rows)
    given = true.copy()
    flip = rng.choice(n_rows, n_noisy, replace=False)
    given[flip] = (true[flip] + rng.integers(1, k, n_noisy)) % k  # uniform over the other classes
    names = np.asarray(CLASSES)
    width = max(5, len(str(n_rows)))
    return pa.table(
        {
            "id": pa.array([f"demo-{i + 1:0{width}d}" for i in range(n_rows)], pa.string()),
            "text": pa.array(texts, pa.string()),
            "label": pa.array(names[given].tolist(), pa.string()),
            "true_label": pa.array(names[true].tolist(), pa.string()),
            "is_noisy": pa.array(given != true, pa.bool_()),
            "is_ambiguous": pa.array(is_amb, pa.bool_()),
        }
    )


def _write_csv_atomic(table: pa.Table, path: Path) -> None:
    with atomic_file(path) as tmp:
        pacsv.write_csv(table, tmp, pacsv.WriteOptions(quoting_style="needed"))


def write_demo(out_dir: str | os.PathLike, **kwargs: Any) -> dict[str, Any]:
    """Write ``demo.csv`` (id,text,label) and ``demo_truth.csv`` (id,true_label,is_noisy,is_ambiguous).

    Each file appears atomically (temp file, then ``os.replace``). ``kwargs`` go to
    :func:`generate_demo`. Returns the paths and the counts.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    table = generate_demo(**kwargs)
    data_path, truth_path = out / "demo.csv", out / "demo_truth.csv"
    _write_csv_atomic(table.select(["id", "text", "label"]), data_path)
    _write_csv_atomic(table.select(["id", "true_label", "is_noisy", "is_ambiguous"]), truth_path)
    labels = table.column("label").to_numpy(zero_copy_only=False)
    return {
        "data": str(data_path),
        "truth": str(truth_path),
        "n_rows": table.num_rows,
        "n_noisy": int(np.sum(table.column("is_noisy").to_numpy(zero_copy_only=False))),
        "n_ambiguous": int(np.sum(table.column("is_ambiguous").to_numpy(zero_copy_only=False))),
        "classes": {c: int(np.sum(labels == c)) for c in CLASSES},
    }
