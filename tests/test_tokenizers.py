"""Tokenizers: round trips (property-based), special tokens, errors, save/load."""
import json
from pathlib import Path

import pytest
import tokenizers as hf
from hypothesis import example, given
from hypothesis import strategies as st

from tinyllm.data import (BERT_SPECIALS, EOS, BPETokenizer, CharTokenizer, DataError, Tokenizer,
                          UnknownCharactersError, load_tokenizer, resolve_corpus)

CORPUS = Path(resolve_corpus("tiny")).read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def bpe() -> BPETokenizer:
    # A few KB and a 300-token vocabulary: trains in milliseconds.
    return BPETokenizer.train([CORPUS[:8000]], vocab_size=300, special_tokens=(EOS,) + BERT_SPECIALS)


@pytest.fixture(scope="module")
def char() -> CharTokenizer:
    return CharTokenizer.from_text(CORPUS[:20000], special_tokens=BERT_SPECIALS + (EOS,))


# ----------------------------------------------------------------------------- CharTokenizer

def test_char_vocabulary_is_sorted_unique_characters_then_specials():
    tok = CharTokenizer.from_text("hello world", special_tokens=("[PAD]", EOS))
    assert tok.chars == sorted(set("hello world"))
    assert tok.vocab_size == len(set("hello world")) + 2
    assert tok.encode("hello") == [tok.chars.index(c) for c in "hello"]
    assert tok.pad_id == len(tok.chars) and tok.eos_id == len(tok.chars) + 1
    assert tok.cls_id is None and tok.sep_id is None and tok.mask_id is None
    assert tok.special_ids == [tok.pad_id, tok.eos_id]


def test_char_special_tokens_in_text_get_their_own_ids(char):
    ids = char.encode("To be[MASK]or<|endoftext|>")
    assert ids[5] == char.mask_id and ids[-1] == char.eos_id
    assert len(ids) == len("To be") + 1 + len("or") + 1
    assert char.decode(ids) == "To be[MASK]or<|endoftext|>"
    assert char.decode(ids, skip_special=True) == "To beor"


def test_char_unknown_characters_are_named_with_positions(char):
    with pytest.raises(UnknownCharactersError) as info:
        char.encode("hi é and é and ✓")
    err = info.value
    assert isinstance(err, DataError)
    assert err.chars == ["é", "✓"] and err.positions == [3, 15]
    assert str(err) == "text has characters outside the tokenizer's vocabulary: 'é' (position 3), '✓' (position 15)"


def test_char_unknown_position_counts_special_tokens_as_their_text(char):
    with pytest.raises(UnknownCharactersError) as info:
        char.encode("[CLS]aé")
    assert info.value.positions == [6]


@given(st.data())
def test_char_roundtrip_over_its_vocabulary(char, data):
    s = data.draw(st.text(alphabet=st.sampled_from(char.chars)))
    ids = char.encode(s)
    assert len(ids) == len(s)
    assert char.decode(ids) == s


@given(st.text(min_size=1))
def test_char_roundtrip_on_any_unicode_vocabulary(text):
    tok = CharTokenizer.from_text(text)
    assert tok.decode(tok.encode(text)) == text
    assert max(tok.encode(text)) < tok.vocab_size


def test_char_save_load_gives_identical_encodings(tmp_path, char):
    tok = CharTokenizer.from_text("\x00tab\there\nemoji 👍🏽 e\u0301 \"quotes\" \\", special_tokens=("[PAD]",))
    for t in (tok, char):
        path = tmp_path / f"{id(t)}.json"
        t.save(path)
        loaded = load_tokenizer(path)
        assert isinstance(loaded, CharTokenizer)
        assert loaded.chars == t.chars and loaded.special_tokens == t.special_tokens
        assert loaded.fingerprint() == t.fingerprint()
        sample = "".join(t.chars)
        assert loaded.encode(sample) == t.encode(sample)
        assert CharTokenizer.load(path).encode(sample) == t.encode(sample)
    assert tok.fingerprint() != char.fingerprint()


def test_char_decode_rejects_ids_outside_vocabulary(char):
    with pytest.raises(DataError, match="token id 1000 is outside the vocabulary"):
        char.decode([1, 1000])
    with pytest.raises(DataError, match="outside the vocabulary"):
        char.decode([-1])
    assert char.decode([]) == ""


def test_char_constructor_errors():
    with pytest.raises(DataError, match="empty text"):
        CharTokenizer.from_text("")
    with pytest.raises(DataError, match="repeated"):
        CharTokenizer(["a", "a"])
    with pytest.raises(DataError, match="single character"):
        CharTokenizer(["ab"])
    with pytest.raises(DataError, match="also a vocabulary character"):
        CharTokenizer(["a", "#"], special_tokens=("#",))


# ----------------------------------------------------------------------------- BPETokenizer

def test_bpe_training_gives_requested_vocab_and_specials(bpe):
    assert bpe.vocab_size == 300
    assert bpe.special_tokens == [EOS, "[PAD]", "[CLS]", "[SEP]", "[MASK]"]
    assert bpe.eos_id == 0 and bpe.pad_id == 1 and bpe.mask_id == 4
    # Merges compress: fewer tokens than bytes on text like the training corpus.
    sample = CORPUS[:2000]
    assert len(bpe.encode(sample)) < 0.8 * len(sample.encode("utf-8"))


@given(st.text())
@example("")
@example("emoji 👍🏽👨‍👩‍👧 flags 🇫🇷")
@example("combining e\u0301 a\u0308 \u0301 at the start")
@example("NUL \x00 and \x01 control \x7f bytes")
@example("\n\n\r\n\t  trailing spaces   \n")
@example("<|endoftext|>[PAD] special tokens written out [MASK]")
@example("中文 русский العربية")
def test_bpe_roundtrip_any_unicode(bpe, s):
    ids = bpe.encode(s)
    assert all(0 <= i < bpe.vocab_size for i in ids)
    assert bpe.decode(ids) == s


def test_bpe_special_tokens_in_text(bpe):
    ids = bpe.encode("a<|endoftext|>b")
    assert bpe.eos_id in ids
    assert bpe.decode(ids, skip_special=True) == "ab"


def test_bpe_encode_batch_matches_encode(bpe):
    texts = ["First Citizen:", "", "héllo wörld", CORPUS[100:400]]
    assert bpe.encode_batch(texts) == [bpe.encode(t) for t in texts]


@given(st.text(max_size=200))
def test_bpe_save_load_gives_identical_encodings(tmp_path_factory, bpe, s):
    path = tmp_path_factory.mktemp("bpe") / "tokenizer.json"
    bpe.save(path)
    loaded = load_tokenizer(path)
    assert isinstance(loaded, BPETokenizer)
    assert loaded.encode(s) == bpe.encode(s)
    assert loaded.fingerprint() == bpe.fingerprint()
    assert load_tokenizer(path.parent).encode(s) == bpe.encode(s)  # a directory holding tokenizer.json


def test_bpe_loads_a_huggingface_tokenizer_json(tmp_path):
    # Built and saved the way Hugging Face ships GPT-2's tokenizer.json (a ByteLevel post-processor included).
    tok = hf.Tokenizer(hf.models.BPE())
    tok.pre_tokenizer = hf.pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = hf.decoders.ByteLevel()
    tok.post_processor = hf.processors.ByteLevel(trim_offsets=False)
    trainer = hf.trainers.BpeTrainer(vocab_size=280, special_tokens=[EOS],
                                     initial_alphabet=hf.pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator([CORPUS[:3000]], trainer)
    tok.save(str(tmp_path / "tokenizer.json"))
    loaded = BPETokenizer.from_file(tmp_path / "tokenizer.json")
    text = "Before we proceed any further, hear me speak."
    assert loaded.encode(text) == tok.encode(text).ids
    assert loaded.decode(loaded.encode(text)) == text
    assert loaded.eos_id == tok.token_to_id(EOS) and loaded.pad_id is None


def test_bpe_refuses_non_bpe_and_broken_files(tmp_path):
    wp = hf.Tokenizer(hf.models.WordPiece({"[UNK]": 0, "a": 1}, unk_token="[UNK]"))
    wp.save(str(tmp_path / "wp.json"))
    with pytest.raises(DataError, match="holds a WordPiece model"):
        BPETokenizer.from_file(tmp_path / "wp.json")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(DataError, match="bad.json: not valid JSON"):
        load_tokenizer(tmp_path / "bad.json")
    (tmp_path / "other.json").write_text(json.dumps({"hello": 1}))
    with pytest.raises(DataError, match="neither a character tokenizer nor a tokenizer.json"):
        load_tokenizer(tmp_path / "other.json")
    with pytest.raises(DataError, match="does not exist"):
        load_tokenizer(tmp_path / "missing.json")


def test_load_of_the_wrong_kind_is_refused(tmp_path, bpe, char):
    bpe.save(tmp_path / "b.json")
    char.save(tmp_path / "c.json")
    with pytest.raises(DataError, match="holds a bpe tokenizer, not a char one"):
        CharTokenizer.load(tmp_path / "b.json")
    assert isinstance(Tokenizer.load(tmp_path / "c.json"), CharTokenizer)
    assert isinstance(BPETokenizer.load(tmp_path / "b.json"), BPETokenizer)


def test_bpe_vocab_too_small_and_bad_ids(bpe):
    with pytest.raises(DataError, match="needs at least 257 tokens"):
        BPETokenizer.train(["abc"], vocab_size=200)
    with pytest.raises(DataError, match="token id 300 is outside the vocabulary"):
        bpe.decode([5, 300])


def test_bpe_train_from_files_streams_a_directory(tmp_path):
    (tmp_path / "a.txt").write_text(CORPUS[:3000], encoding="utf-8")
    (tmp_path / "b.txt").write_text(CORPUS[3000:6000], encoding="utf-8")
    from_files = BPETokenizer.train_from_files([tmp_path], vocab_size=300)
    from_texts = BPETokenizer.train([CORPUS[:3000], CORPUS[3000:6000]], vocab_size=300)
    assert from_files.vocab_size == 300
    assert from_files.encode(CORPUS[:500]) == from_texts.encode(CORPUS[:500])
