#!/usr/bin/env python3
"""Generate a synthetic catalog for the control-plane benchmark.

Writes, into OUT_DIR:
  catalog.jsonl   JSON Lines for POST /v1/admin/import/jsonl: ARTISTS artists,
                  ALBUMS albums, TRACKS tracks (metadata only: no audio),
                  entities in dependency order;
  track_ids.txt   a sample of track ids, drawn by popularity (Zipf), one per line;
  queries.txt     search queries as listeners type them: word prefixes of real
                  titles and names, whole titles, and one-typo names.

Deterministic for a given seed. Names are built from patterns whose
slots draw words with Zipf's law, the way words of real titles and names
are spread: each slot's list starts with common English words ("love",
"night", "heart": tens of thousands of tracks each) and goes on with
--tail-words generated words (each in a handful of titles), so searches
meet both long posting lists and selective ones. --tail-words 0 keeps only
the 221 common words: every word then matches tens of thousands of rows, a
harsher catalog than any real one (the stress case).

With --audio every track also carries a transcoder manifest (four
renditions with content-hash-like file ids, sizes at the ladder's
bitrates, a seek point every 10 s), so stream URLs can be issued for it
(loadtest/bench-playback.sh).

usage: gen_catalog.py OUT_DIR [--artists N] [--albums N] [--tracks N]
                      [--tail-words N] [--seed S] [--audio]
"""

import argparse
import bisect
import hashlib
import itertools
import json
import os
import random

ADJ = """red blue golden silver broken electric quiet wild lonely endless midnight
summer winter crystal velvet neon hollow distant burning frozen sweet bitter
restless gentle savage secret silent brave tender heavy lucky crazy little
dark bright lost young old sacred empty northern southern western eastern
strange glass iron paper wooden stone""".split()
NOUN = """heart night river fire dream road city ocean light rain shadow sky star
mountain storm garden mirror window train highway moon sun wave echo ghost
angel kingdom desert island forest thunder whisper season memory letter
promise diamond rose wolf bird horse tiger crown bridge tower harbor valley
machine radio signal circuit engine""".split()
VERB = """love dance run fall burn shine break dream fly wait call hold remember
forget believe follow chase stay leave sing cry""".split()
FIRST = """ada leo mia noah ella liam zoe omar nina ivan sara theo lena hugo
maya felix iris oscar ruby jonas alma elias clara""".split()
LAST = """lovelace byte carter moreno novak silva berg lindqvist okafor tanaka
kowalski dubois rossi hansen murphy garcia ivanova nakamura""".split()
BAND = ["the {a} {n}s", "{a} {n}", "{n} of {n2}s", "the {n}s", "{f} {l}", "{f} and the {n}s"]
TITLE = ["{a} {n}", "{v} me", "{v} the {n}", "{n} of {a} {n2}s", "{a} {n} ({v})",
         "{n}", "mr {a} {n}", "{v} {v2}", "{a} {a2} {n}", "{n} in the {n2}"]
ALBUM_TYPES = ["album"] * 6 + ["single"] * 3 + ["ep", "compilation"]


class Zipf:
    """Draws from `words` with weight 1/rank (s = 1)."""

    def __init__(self, words):
        self.words = words
        self.cum = list(itertools.accumulate(1.0 / (r + 1) for r in range(len(words))))

    def __call__(self, rng):
        return self.words[bisect.bisect_left(self.cum, rng.random() * self.cum[-1])]


def pseudo_words(rng, n, taken):
    """`n` distinct pronounceable words (2-3 syllables), none in `taken`."""
    onset = "b c d f g h j k l m n p r s t v w z br cr dr fl gr kl pr sh st tr ch".split()
    vowel = "a e i o u a e i o ai ea ou io".split()
    coda = ["", "", "", "n", "r", "s", "l", "th", "x", "nd"]
    out, seen = [], set(taken)
    while len(out) < n:
        w = "".join(rng.choice(onset) + rng.choice(vowel) for _ in range(rng.choice((2, 2, 3)))) + rng.choice(coda)
        if w not in seen:
            seen.add(w)
            out.append(w)
    return out


class Vocabulary:
    """A Zipf draw per slot of the name patterns: the common words first,
    then `tail` generated words spread over the slots."""

    def __init__(self, rng, tail):
        taken = set(ADJ + NOUN + VERB + FIRST + LAST)
        extra = pseudo_words(rng, tail, taken)
        # Nouns take the most new words, then adjectives, names, verbs.
        shares = {"n": 0.4, "a": 0.25, "f": 0.1, "l": 0.15, "v": 0.1}
        start, slots = 0, {}
        for key, head in (("n", NOUN), ("a", ADJ), ("f", FIRST), ("l", LAST), ("v", VERB)):
            k = int(tail * shares[key])
            slots[key] = Zipf(head + extra[start:start + k])
            start += k
        self.slots = slots

    def fill(self, rng, pattern):
        d = self.slots
        return pattern.format(
            a=d["a"](rng), a2=d["a"](rng), n=d["n"](rng), n2=d["n"](rng),
            v=d["v"](rng), v2=d["v"](rng), f=d["f"](rng), l=d["l"](rng),
        ).title()


def zipf_popularity(rank, n):
    """0-100 from a rank (0 = most popular): a long tail, like streams."""
    return max(0, min(100, int(round(100 * (1.0 - (rank / n) ** 0.12)))))


def typo(rng, word):
    if len(word) < 5:
        return word
    i = rng.randrange(1, len(word) - 2)
    return word[:i] + word[i + 1] + word[i] + word[i + 2:]


LOUDNESS = {"integrated_lufs": -16.0, "loudness_range_lu": 6.0, "true_peak_dbtp": -1.5, "gain_db": 2.0}


def manifest(track_id, duration_ms):
    """A manifest v2 for a track of duration_ms, as the transcoder writes."""
    secs = duration_ms // 1000
    renditions = []
    for kbps, rate, channels in ((24, 22_050, 1), (96, 44_100, 2), (160, 44_100, 2), (320, 44_100, 2)):
        size = kbps * 125 * secs + 4_000
        renditions.append({
            "bitrate_kbps": kbps,
            "file_id": hashlib.sha256(f"{track_id}/{kbps}".encode()).hexdigest()[:32],
            "size": size, "frames": rate * duration_ms // 1000, "duration_ms": duration_ms,
            "achieved_kbps": float(kbps), "sample_rate": rate, "channels": channels,
            "mime": "audio/ogg; codecs=vorbis", "loudness": dict(LOUDNESS, gain_db=2.0 + kbps / 1000),
            "seek": [{"ms": s * 1000, "offset": 4_000 + s * kbps * 125} for s in range(0, secs, 10)],
        })
    return {
        "version": 2, "track_id": track_id,
        "source": {"sha256": hashlib.sha256(track_id.encode()).hexdigest(), "format": "wav",
                   "sample_rate": 44_100, "channels": 2, "frames": 44_100 * duration_ms // 1000,
                   "duration_ms": duration_ms},
        "loudness": LOUDNESS,
        "features": {"duration_ms": duration_ms, "integrated_lufs": -16.0, "loudness_range_lu": 6.0,
                     "tempo_bpm": 120.0, "tempo_confidence": 0.5, "energy": 0.2,
                     "spectral_centroid_hz": 1500.0, "zero_crossing_rate": 0.05, "timbre": [0.0] * 26},
        "encoder": "gen_catalog", "encoder_vendor": "gen_catalog",
        "renditions": renditions,
    }


def main():
    p = argparse.ArgumentParser()
    p.add_argument("out")
    p.add_argument("--artists", type=int, default=50_000)
    p.add_argument("--albums", type=int, default=100_000)
    p.add_argument("--tracks", type=int, default=1_000_000)
    p.add_argument("--tail-words", type=int, default=20_000)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--audio", action="store_true", help="give every track a manifest (four renditions)")
    args = p.parse_args()
    rng = random.Random(args.seed)
    os.makedirs(args.out, exist_ok=True)
    vocabulary = Vocabulary(rng, args.tail_words)
    fill = vocabulary.fill

    artist_names = [fill(rng, rng.choice(BAND)) for _ in range(args.artists)]
    artist_rank = list(range(args.artists))
    rng.shuffle(artist_rank)
    titles = []
    with open(os.path.join(args.out, "catalog.jsonl"), "w") as out:
        for i, name in enumerate(artist_names):
            out.write(json.dumps({"artist": {"id": f"ar{i}", "name": name,
                                             "popularity": zipf_popularity(artist_rank[i], args.artists)}},
                                 separators=(",", ":")) + "\n")
        album_artist = []
        for i in range(args.albums):
            a = rng.randrange(args.artists)
            album_artist.append(a)
            year = rng.randrange(1960, 2027)
            out.write(json.dumps({"album": {
                "id": f"al{i}", "title": fill(rng, rng.choice(TITLE)),
                "album_type": rng.choice(ALBUM_TYPES),
                "release_date": f"{year}-{rng.randrange(1, 13):02d}-{rng.randrange(1, 29):02d}",
                "artist_ids": [f"ar{a}"], "popularity": zipf_popularity(rng.randrange(args.albums), args.albums)}},
                separators=(",", ":")) + "\n")
        per_album = [0] * args.albums
        track_rank = list(range(args.tracks))
        rng.shuffle(track_rank)
        for i in range(args.tracks):
            al = i % args.albums
            per_album[al] += 1
            title = fill(rng, rng.choice(TITLE))
            titles.append(title)
            artists = [f"ar{album_artist[al]}"]
            if rng.random() < 0.1:
                feat = f"ar{rng.randrange(args.artists)}"
                if feat not in artists:
                    artists.append(feat)
            track = {
                "id": f"t{i}", "album_id": f"al{al}", "title": title, "track_number": per_album[al],
                "explicit": rng.random() < 0.15, "artist_ids": artists,
                "duration_ms": rng.randrange(90_000, 420_000),
                "popularity": zipf_popularity(track_rank[i], args.tracks)}
            if args.audio:
                track["manifest"] = manifest(f"t{i}", track["duration_ms"])
            out.write(json.dumps({"track": track}, separators=(",", ":")) + "\n")

    # Track ids by popularity: rank r drawn with weight 1/(r+1) (Zipf, s=1).
    by_rank = sorted(range(args.tracks), key=lambda i: track_rank[i])
    weights = [1.0 / (r + 1) for r in range(args.tracks)]
    sample = rng.choices(by_rank, weights=weights, k=20_000)
    with open(os.path.join(args.out, "track_ids.txt"), "w") as f:
        f.writelines(f"t{i}\n" for i in sample)

    with open(os.path.join(args.out, "queries.txt"), "w") as f:
        for _ in range(5_000):
            kind = rng.random()
            if kind < 0.4:  # typing a title: whole words then a prefix
                words = rng.choice(titles).lower().replace("(", "").replace(")", "").split()
                k = rng.randrange(1, len(words) + 1)
                q = words[:k]
                q[-1] = q[-1][: max(2, rng.randrange(2, len(q[-1]) + 1))]
                f.write(" ".join(q) + "\n")
            elif kind < 0.7:  # an artist, maybe with a typo
                name = rng.choice(artist_names).lower().split()
                if rng.random() < 0.5:
                    j = rng.randrange(len(name))
                    name[j] = typo(rng, name[j])
                f.write(" ".join(name) + "\n")
            else:  # a whole title
                f.write(rng.choice(titles).lower() + "\n")


if __name__ == "__main__":
    main()
