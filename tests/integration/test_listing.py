"""ListObjects v1 and v2 over 2,500 keys: prefixes, delimiters, paging with
max-keys / continuation tokens / markers, start-after, and encoding-type=url,
compared with the listing computed here from the keys that were written."""

from concurrent.futures import ThreadPoolExecutor
import json
import re
import urllib.parse
import xml.etree.ElementTree as ET

import pytest

from s3helpers import assert_s3_error, expect_error, md5_hex, strip_ns, unique_name, xml_find_all

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


# ---------------------------------------------------------------- control characters, empty delimiter, owners

CONTROL_KEYS = [f"ctl/{chr(c)}-{c:02d}/obj" for c in range(1, 32)] + ["ctl/plain/obj"]


@pytest.fixture(scope="module")
def control_bucket(s3):
    name = unique_name("ctl")
    s3.create_bucket(Bucket=name)
    for k in CONTROL_KEYS:
        s3.put_object(Bucket=name, Key=k, Body=b"c")
    return name


def child_texts(root, parent, name):
    return [e.text or "" for p in xml_find_all(root, parent) for e in p if strip_ns(e.tag) == name]


@pytest.mark.parametrize("kind", ["v2", "v1", "versions"])
def test_control_characters_round_trip_with_url_encoding(raw, control_bucket, kind):
    """Keys, prefixes, delimiters and markers holding \\x01..\\x1f come back %-encoded, so the
    XML stays well-formed and every name decodes to what was written."""
    after = "ctl/\x05"
    query = [("prefix", "ctl/"), ("delimiter", "/"), ("encoding-type", "url")]
    if kind == "v2":
        query += [("list-type", "2"), ("start-after", after), ("max-keys", "3")]
    elif kind == "v1":
        query += [("marker", after), ("max-keys", "3")]
    else:
        query += [("versions", ""), ("key-marker", after), ("max-keys", "3")]
    r = raw.request("GET", control_bucket, query=query)
    assert r.status_code == 200, r.text
    assert not any(0 < b < 32 and b not in (9, 10, 13) for b in r.content), "a raw control character in the XML"
    root = ET.fromstring(r.content)
    decode = urllib.parse.unquote_plus
    prefixes = [decode(p) for p in child_texts(root, "CommonPrefixes", "Prefix")]
    expected_prefixes = sorted({k.rsplit("/", 1)[0] + "/" for k in CONTROL_KEYS if k > after}, key=b)[:3]
    assert prefixes == expected_prefixes
    for p in child_texts(root, "CommonPrefixes", "Prefix"):
        assert not any(ord(c) < 32 for c in p), p
    assert [decode(t) for t in texts(root, "Delimiter")] == ["/"]
    if kind == "v2":
        assert [decode(t) for t in texts(root, "StartAfter")] == [after]
        assert "%05" in texts(root, "StartAfter")[0]
        # The next page continues after the last prefix.
        token = texts(root, "NextContinuationToken")[0]
        r2 = raw.request("GET", control_bucket, query=[("list-type", "2"), ("prefix", "ctl/"), ("delimiter", "/"),
                                                       ("encoding-type", "url"), ("continuation-token", token)])
        nxt = [decode(p) for p in child_texts(ET.fromstring(r2.content), "CommonPrefixes", "Prefix")]
        assert nxt[0] == sorted({k.rsplit("/", 1)[0] + "/" for k in CONTROL_KEYS if k > after}, key=b)[3]
    elif kind == "v1":
        assert [decode(t) for t in texts(root, "Marker")] == [after]
        assert [decode(t) for t in texts(root, "NextMarker")] == [expected_prefixes[-1]]
        assert "%" in texts(root, "NextMarker")[0]
    else:
        assert [decode(t) for t in texts(root, "KeyMarker")] == [after]
        assert [decode(t) for t in texts(root, "NextKeyMarker")] == [expected_prefixes[-1]]


def test_control_characters_in_keys_round_trip_through_boto3(s3, control_bucket):
    keys = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=control_bucket, Prefix="ctl/", PaginationConfig={"PageSize": 7}):
        keys += [o["Key"] for o in page.get("Contents", [])]
    assert keys == sorted(CONTROL_KEYS, key=b)
    for k in CONTROL_KEYS[:3]:
        assert s3.get_object(Bucket=control_bucket, Key=k)["Body"].read() == b"c"


@pytest.mark.parametrize("kind", ["v2", "v1", "versions", "uploads"])
def test_an_empty_delimiter_is_no_delimiter(raw, s3, kind):
    name = unique_name("emptydelim")
    s3.create_bucket(Bucket=name)
    for k in ("a/1", "a/2", "b"):
        s3.put_object(Bucket=name, Key=k, Body=b"x")
        s3.create_multipart_upload(Bucket=name, Key=k)
    query = {"v2": [("list-type", "2")], "v1": [], "versions": [("versions", "")], "uploads": [("uploads", "")]}[kind]
    root = raw_list(raw, name, query + [("delimiter", "")])
    assert child_texts(root, "CommonPrefixes", "Prefix") == []
    entry = {"v2": "Contents", "v1": "Contents", "versions": "Version", "uploads": "Upload"}[kind]
    assert child_texts(root, entry, "Key") == ["a/1", "a/2", "b"]
    assert texts(root, "Delimiter") == []
    assert texts(root, "NextMarker") == []


def test_fetch_owner_names_the_tenant(s3, server, listing_bucket):
    plain = s3.list_objects_v2(Bucket=listing_bucket, MaxKeys=2)
    assert all("Owner" not in o for o in plain["Contents"])
    owned = s3.list_objects_v2(Bucket=listing_bucket, MaxKeys=2, FetchOwner=True)
    tenant = s3.list_buckets()["Owner"]
    assert tenant["ID"] and tenant["DisplayName"]
    assert [o["Owner"] for o in owned["Contents"]] == [tenant, tenant]
    # ListObjects (v1) always names the owner, as S3 does.
    v1 = s3.list_objects(Bucket=listing_bucket, MaxKeys=2)
    assert [o["Owner"] for o in v1["Contents"]] == [tenant, tenant]


def test_list_buckets_pages_with_max_buckets_and_continuation_tokens(server, s3, raw):
    prefix = unique_name("lbpage")[:30]
    names = sorted(f"{prefix}-{i}" for i in range(5))
    for n in names:
        s3.create_bucket(Bucket=n)
    got, token, pages = [], None, 0
    while True:
        kw = {"MaxBuckets": 2, "Prefix": prefix}
        if token:
            kw["ContinuationToken"] = token
        page = s3.list_buckets(**kw)
        pages += 1
        got += [x["Name"] for x in page["Buckets"]]
        assert page["Prefix"] == prefix
        token = page.get("ContinuationToken")
        if not token:
            break
        assert len(page["Buckets"]) == 2
    assert got == names and pages == 3
    # boto3's paginator follows the same tokens.
    paged = [x["Name"] for p in s3.get_paginator("list_buckets").paginate(Prefix=prefix, PaginationConfig={"PageSize": 3})
             for x in p["Buckets"]]
    assert paged == names
    # Without paging every bucket comes in one answer, without a token.
    whole = s3.list_buckets()
    assert set(names) <= {x["Name"] for x in whole["Buckets"]} and "ContinuationToken" not in whole
    # Another region holds none of this tenant's buckets.
    assert s3.list_buckets(BucketRegion="us-west-2", Prefix=prefix)["Buckets"] == []
    for bad in ("0", "10001", "-3", "x"):
        r = raw.request("GET", query=[("max-buckets", bad)])
        assert_s3_error(r, 400, "InvalidArgument")
    r = raw.request("GET", query=[("continuation-token", "!!not a token!!")])
    assert_s3_error(r, 400, "InvalidArgument")


def test_aws_cli_pages_list_buckets(s3, aws):
    prefix = unique_name("clipage")[:30]
    names = sorted(f"{prefix}-{i}" for i in range(5))
    for n in names:
        s3.create_bucket(Bucket=n)
    # --page-size is max-buckets: the CLI follows the continuation tokens.
    out = json.loads(aws("s3api", "list-buckets", "--prefix", prefix, "--page-size", "2", "--output", "json").stdout)
    assert [x["Name"] for x in out["Buckets"]] == names
    first = json.loads(aws("s3api", "list-buckets", "--prefix", prefix, "--page-size", "2", "--max-items", "3",
                           "--output", "json").stdout)
    assert [x["Name"] for x in first["Buckets"]] == names[:3] and first.get("NextToken")
    rest = json.loads(aws("s3api", "list-buckets", "--prefix", prefix, "--page-size", "2",
                          "--starting-token", first["NextToken"], "--output", "json").stdout)
    assert [x["Name"] for x in rest["Buckets"]] == names[3:]
