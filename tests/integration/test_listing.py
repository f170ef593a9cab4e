"""ListObjects v1 and v2 over 2,500 keys: prefixes, delimiters, paging with
max-keys / continuation tokens / markers, start-after, and encoding-type=url,
compared with the listing computed here from the keys that were written."""

from concurrent.futures import ThreadPoolExecutor
import re
import urllib.parse
import xml.etree.ElementTree as ET

import pytest

from s3helpers import md5_hex, strip_ns, unique_name, xml_find_all

SPECIAL = [
    "sp ace", "plus+sign", "pct%20", "amp&", "lt<gt>", "quote\"'", "uni-ß-漢字", "tab\tchar",
    "eq=", "q?", "hash#", "tilde~", "colon:", "semi;", "comma,", "at@", "dollar$", "excl!",
    "star*", "paren()", "brackets[]", "caret^", "pipe|", "back\\slash", "emoji😀",
]


def build_keys() -> list[str]:
    keys = [f"dir{i % 10}/sub{i % 7}/f{i:04d}.txt" for i in range(2000)]
    keys += [f"top-{i:03d}" for i in range(300)]
    keys += [f"special/{SPECIAL[i % len(SPECIAL)]}-{i:02d}" for i in range(100)]
    keys += [f"a/b/c/d/deep{i:02d}" for i in range(97)]
    keys += ["dir0/", "dir1/sub1/", "a/"]  # "folder" keys ending in the delimiter
    assert len(keys) == len(set(keys)) == 2500
    return keys


KEYS = build_keys()


def b(s: str) -> bytes:
    return s.encode("utf-8")


def expected(prefix: str = "", delimiter: str | None = None, after: str | None = None):
    contents, prefixes = [], set()
    for k in sorted(KEYS, key=b):
        if not k.startswith(prefix):
            continue
        if after is not None and b(k) <= b(after):
            continue
        if delimiter:
            rest = k[len(prefix):]
            i = rest.find(delimiter)
            if i >= 0:
                prefixes.add(prefix + rest[: i + len(delimiter)])
                continue
        contents.append(k)
    return contents, sorted(prefixes, key=b)


@pytest.fixture(scope="module")
def listing_bucket(s3):
    name = unique_name("listing")
    s3.create_bucket(Bucket=name)

    def put(k):
        s3.put_object(Bucket=name, Key=k, Body=b(k))

    with ThreadPoolExecutor(16) as pool:
        list(pool.map(put, KEYS))
    return name


CASES = [
    ("", None, 1000),
    ("", None, 337),
    ("", "/", 7),
    ("dir3/", "/", 2),
    ("dir3/", None, 250),
    ("special/", None, 13),
    ("a/", "/", 1),
    ("top-1", None, 40),
    ("nothing-here/", "/", 100),
]


def check_page(page: dict, max_keys: int, contents: list, prefixes: list):
    n = len(contents) + len(prefixes)
    assert n <= max_keys
    if page["IsTruncated"]:
        assert n == max_keys, f"truncated page holds {n} entries, max-keys {max_keys}"


@pytest.mark.parametrize("prefix, delimiter, max_keys", CASES)
def test_list_v2_paging(s3, listing_bucket, prefix, delimiter, max_keys):
    exp_contents, exp_prefixes = expected(prefix, delimiter)
    got_contents, got_prefixes, sizes = [], [], {}
    token = None
    pages = 0
    while True:
        args = dict(Bucket=listing_bucket, Prefix=prefix, MaxKeys=max_keys)
        if delimiter:
            args["Delimiter"] = delimiter
        if token:
            args["ContinuationToken"] = token
        page = s3.list_objects_v2(**args)
        pages += 1
        contents = [o["Key"] for o in page.get("Contents", [])]
        prefixes = [p["Prefix"] for p in page.get("CommonPrefixes", [])]
        assert page["KeyCount"] == len(contents) + len(prefixes)
        assert page["MaxKeys"] == max_keys
        assert page.get("Prefix", "") == prefix
        check_page(page, max_keys, contents, prefixes)
        for o in page.get("Contents", []):
            sizes[o["Key"]] = (o["Size"], o["ETag"])
        got_contents += contents
        got_prefixes += prefixes
        if not page["IsTruncated"]:
            assert "NextContinuationToken" not in page
            break
        token = page["NextContinuationToken"]
        assert pages < 3000, "paging does not terminate"
    assert got_contents == exp_contents
    assert got_prefixes == exp_prefixes
    for k in exp_contents:
        assert sizes[k] == (len(b(k)), f'"{md5_hex(b(k))}"'), k
    expected_pages = max(1, -(-(len(exp_contents) + len(exp_prefixes)) // max_keys))
    assert pages == expected_pages


@pytest.mark.parametrize("prefix, delimiter, max_keys", CASES)
def test_list_v1_paging(s3, listing_bucket, prefix, delimiter, max_keys):
    exp_contents, exp_prefixes = expected(prefix, delimiter)
    got_contents, got_prefixes = [], []
    marker = ""
    pages = 0
    while True:
        args = dict(Bucket=listing_bucket, Prefix=prefix, MaxKeys=max_keys, Marker=marker)
        if delimiter:
            args["Delimiter"] = delimiter
        page = s3.list_objects(**args)
        pages += 1
        contents = [o["Key"] for o in page.get("Contents", [])]
        prefixes = [p["Prefix"] for p in page.get("CommonPrefixes", [])]
        check_page(page, max_keys, contents, prefixes)
        assert page.get("Marker", "") == marker
        got_contents += contents
        got_prefixes += prefixes
        if not page["IsTruncated"]:
            break
        if delimiter:
            # With a delimiter, S3 returns NextMarker when truncated.
            assert page.get("NextMarker"), "truncated v1 listing with delimiter lacks NextMarker"
            marker = page["NextMarker"]
        else:
            marker = page.get("NextMarker") or contents[-1]
        assert pages < 3000
    assert got_contents == exp_contents
    assert got_prefixes == exp_prefixes


@pytest.mark.parametrize("after", ["dir5/sub0", "dir5/sub0/f0005.txt", "special/", "top-299", "zzz", ""])
def test_list_v2_start_after(s3, listing_bucket, after):
    exp, _ = expected(after=after if after else None)
    got, token = [], None
    while True:
        args = dict(Bucket=listing_bucket, StartAfter=after, MaxKeys=600)
        if token:
            args["ContinuationToken"] = token
        page = s3.list_objects_v2(**args)
        got += [o["Key"] for o in page.get("Contents", [])]
        if not page["IsTruncated"]:
            break
        token = page["NextContinuationToken"]
    assert got == exp


def test_list_v1_marker(s3, listing_bucket):
    marker = "dir7/sub3/f1500.txt"
    exp, _ = expected(after=marker)
    page = s3.list_objects(Bucket=listing_bucket, Marker=marker, MaxKeys=1000)
    assert [o["Key"] for o in page["Contents"]] == exp[:1000]
    assert page["IsTruncated"] == (len(exp) > 1000)


def raw_list(raw, bucket, query):
    r = raw.request("GET", bucket, query=query)
    assert r.status_code == 200, r.text
    return ET.fromstring(r.content)


def texts(root, name):
    return [e.text or "" for e in xml_find_all(root, name)]


@pytest.mark.parametrize("v2", [True, False], ids=["v2", "v1"])
def test_encoding_type_url(raw, listing_bucket, v2):
    query = [("prefix", "special/"), ("encoding-type", "url"), ("max-keys", "1000")]
    if v2:
        query.append(("list-type", "2"))
    root = raw_list(raw, listing_bucket, query)
    assert texts(root, "EncodingType") == ["url"]
    keys = [e.text for c in xml_find_all(root, "Contents") for e in c if strip_ns(e.tag) == "Key"]
    exp, _ = expected("special/")
    assert [urllib.parse.unquote_plus(k) for k in keys] == exp
    for k in keys:
        for ch in " \t<>&\"'":
            assert ch not in k, f"key not URL-encoded: {k!r}"
        assert re.fullmatch(r"([^%]|%[0-9A-Fa-f]{2})*", k), f"stray '%' in encoded key {k!r}"
    # A key holding a literal '+' must come back as %2B, or a client that
    # decodes '+' as a space gets the wrong key.
    plus = [k for k in keys if "plus" in k]
    assert plus and all("%2B" in k for k in plus), plus
    assert [urllib.parse.unquote_plus(p) for p in texts(root, "Prefix")][:1] == ["special/"]


def test_encoding_type_url_delimiter_prefixes(raw, s3):
    name = unique_name("encprefix")
    s3.create_bucket(Bucket=name)
    for k in ("a b/x", "a+b/y", "ü/z", "plain"):
        s3.put_object(Bucket=name, Key=k, Body=b"1")
    root = raw_list(raw, name, [("list-type", "2"), ("delimiter", "/"), ("encoding-type", "url")])
    prefixes = [e.text for p in xml_find_all(root, "CommonPrefixes") for e in p if strip_ns(e.tag) == "Prefix"]
    decoded = [urllib.parse.unquote_plus(p) for p in prefixes]
    assert decoded == sorted(["a b/", "a+b/", "ü/"], key=b)
    assert all(" " not in p and "ü" not in p for p in prefixes), prefixes


def test_raw_xml_without_encoding(raw, listing_bucket):
    root = raw_list(raw, listing_bucket, [("list-type", "2"), ("prefix", "special/"), ("max-keys", "1000")])
    keys = [e.text for c in xml_find_all(root, "Contents") for e in c if strip_ns(e.tag) == "Key"]
    exp, _ = expected("special/")
    assert keys == exp, "keys with XML-special characters must round-trip through XML escaping"


def test_max_keys_zero_and_small(s3, listing_bucket):
    page = s3.list_objects_v2(Bucket=listing_bucket, MaxKeys=1)
    assert page["KeyCount"] == 1 and page["IsTruncated"]
    assert [o["Key"] for o in page["Contents"]] == expected()[0][:1]
    page = s3.list_objects_v2(Bucket=listing_bucket, MaxKeys=0)
    assert page.get("KeyCount", 0) == 0 and not page.get("Contents")


def test_default_page_is_1000(s3, listing_bucket):
    page = s3.list_objects_v2(Bucket=listing_bucket)
    assert page["KeyCount"] == 1000 and page["IsTruncated"]
    page = s3.list_objects(Bucket=listing_bucket)
    assert len(page["Contents"]) == 1000 and page["IsTruncated"]
