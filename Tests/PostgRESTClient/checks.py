"""Drives pgbridge's REST proxy with PostgREST's own Python client (`postgrest` on PyPI, the
one Supabase's SDK uses) and compares each answer with what PostgREST's documentation
specifies for it. Run by Tests/IntegrationTests/PostgRESTClientTests.swift against the
schema that test creates; prints one JSON line per check and exits 1 when any failed.

Usage: checks.py BASE_URL ALICE_TOKEN BOB_TOKEN
"""

import json
import sys
import traceback

from postgrest import APIError, CountMethod, ReturnMethod, SyncPostgrestClient

BASE, ALICE, BOB = sys.argv[1], sys.argv[2], sys.argv[3]


def client(token, schema="public"):
    return SyncPostgrestClient(BASE, schema=schema, headers={"Authorization": f"Bearer {token}"})


alice = client(ALICE)
bob = client(BOB)
results = []


def check(function):
    try:
        function()
        results.append({"check": function.__name__, "ok": True})
    except Exception:  # noqa: BLE001 - every failure is reported, with its traceback
        results.append({"check": function.__name__, "ok": False, "detail": traceback.format_exc()[-1500:]})
    return function


def expect(actual, expected, what=""):
    if actual != expected:
        raise AssertionError(f"{what}: expected {expected!r}, got {actual!r}")


def ids(response):
    return [row["id"] for row in response.data]


def error_of(call):
    try:
        call()
    except APIError as error:
        return error
    raise AssertionError("expected an APIError, the request succeeded")


products = lambda: alice.table("products")  # noqa: E731


@check
def select_all_in_order():
    response = products().select("*").order("id").execute()
    expect(ids(response), list(range(1, 11)), "ids")
    expect(sorted(response.data[0].keys()), ["created", "data", "doc", "id", "name", "period", "price", "stock", "tags"])


@check
def comparison_filters():
    expect(ids(products().select("id").eq("name", "gamma").execute()), [3], "eq")
    expect(ids(products().select("id").neq("id", 1).lte("id", 3).order("id").execute()), [2, 3], "neq+lte")
    expect(ids(products().select("id").gt("price", 8).order("id").execute()), [9, 10], "gt")
    expect(ids(products().select("id").gte("price", 9).lt("price", 10).execute()), [9], "gte+lt")
    expect(ids(products().select("id").in_("name", ["alpha", "delta", "a,b"]).order("id").execute()), [1, 4], "in")
    expect(ids(products().select("id").is_("data", "null").order("id").execute()), [10], "is null")
    expect(ids(products().select("id").not_.is_("data", "null").order("id").execute()), list(range(1, 10)), "not is")
    expect(ids(products().select("id").not_.eq("id", 1).lt("id", 3).execute()), [2], "not.eq")
    expect(ids(products().select("id").match({"name": "beta"}).execute()), [2], "match")
    expect(ids(products().select("id").filter("name", "isdistinct", "alpha").lt("id", 3).execute()), [2], "isdistinct")


@check
def pattern_filters():
    expect(ids(products().select("id").like("name", "%lph%").execute()), [1], "like")
    expect(ids(products().select("id").ilike("name", "AL*").execute()), [1], "ilike with *")
    expect(ids(products().select("id").like_any_of("name", "al*,be*").order("id").execute()), [1, 2], "like(any)")
    expect(ids(products().select("id").ilike_all_of("name", "*A*,*H*").order("id").execute()), [1, 5], "ilike(all)")
    expect(ids(products().select("id").filter("name", "match", "^[ab]").order("id").execute()), [1, 2], "match")
    expect(ids(products().select("id").filter("name", "imatch", "^G").execute()), [3], "imatch")


@check
def array_range_and_json_filters():
    expect(ids(products().select("id").contains("tags", ["red"]).order("id").execute()), [1, 3, 5, 7, 9], "cs")
    expect(ids(products().select("id").contained_by("tags", ["red", "blue", "odd", "even"]).order("id").execute()),
           list(range(1, 11)), "cd")
    expect(ids(products().select("id").contained_by("tags", ["red", "odd"]).order("id").execute()), [1, 3, 5, 7, 9],
           "cd, only the odd rows")
    expect(ids(products().select("id").overlaps("tags", ["blue", "nope"]).order("id").execute()), [2, 4, 6, 8, 10], "ov")
    expect(ids(products().select("id").contains("data", {"color": "red"}).order("id").execute()), [1, 3, 5, 7, 9],
           "cs json")
    expect(ids(products().select("id").range_lt("period", (50, 60)).order("id").execute()), [1, 2, 3, 4, 5], "sl")
    expect(ids(products().select("id").range_gt("period", (0, 70)).order("id").execute()), [8, 9, 10], "sr")
    expect(ids(products().select("id").range_adjacent("period", (0, 10)).execute()), [2], "adj")
    expect(ids(products().select("id").eq("data->>color", "blue").order("id").execute()), [2, 4, 6, 8], "json path")


@check
def full_text_search():
    expect(ids(products().select("id").text_search("doc", "quick & fox").execute()), [1], "fts")
    expect(ids(products().select("id").text_search("doc", "lazy dog", {"type": "plain", "config": "english"})
               .order("id").execute()), [2], "plfts(english)")
    expect(ids(products().select("id").text_search("doc", "brown fox", {"type": "phrase"}).execute()), [1], "phfts")
    expect(ids(products().select("id").text_search("doc", '"lazy dog" or quick', {"type": "web_search"})
               .order("id").execute()), [1, 2], "wfts")


@check
def logic_trees():
    response = products().select("id").or_("id.eq.1,and(price.gt.9,name.like.k*),name.in.(\"gamma\",delta)").order(
        "id").execute()
    expect(ids(response), [1, 3, 4, 10], "or with nested and")
    negated = products().select("id").not_.or_("id.gt.2,name.eq.alpha").execute()
    expect(ids(negated), [2], "not.or")


@check
def select_aliases_casts_and_json_paths():
    row = products().select("key:id,price::text,color:data->>color,data->size").eq("id", 2).execute().data
    expect(row, [{"key": 2, "price": "2.5", "color": "blue", "size": 2}], "shaped row")


@check
def aggregates_with_implied_grouping():
    rows = products().select("data->>color,total:price.sum(),count()").not_.is_("data", "null").order(
        "data->>color").execute().data
    expect(rows, [{"color": "blue", "total": 20.5, "count": 4}, {"color": "red", "total": 25, "count": 5}], "groups")


@check
def order_with_nulls():
    response = products().select("id").order("data->>size", desc=True, nullsfirst=True).limit(2).execute()
    expect(ids(response), [10, 9], "nullsfirst desc")


@check
def counts_limits_and_ranges():
    response = products().select("id", count=CountMethod.exact).order("id").limit(3).execute()
    expect((ids(response), response.count), ([1, 2, 3], 10), "exact count with limit")
    page = products().select("id", count=CountMethod.exact).order("id").range(4, 6).execute()
    expect((ids(page), page.count), ([5, 6, 7], 10), "range")
    planned = products().select("id", count=CountMethod.planned).execute()
    if not isinstance(planned.count, int) or planned.count < 1:
        raise AssertionError(f"planned count: {planned.count!r}")
    estimated = products().select("id", count=CountMethod.estimated).execute()
    expect(estimated.count, 10, "estimated (small tables are counted)")
    head = products().select("*", count=CountMethod.exact, head=True).gt("id", 7).execute()
    expect(head.count, 3, "HEAD count")


@check
def single_and_maybe_single():
    one = products().select("id,name").eq("id", 4).single().execute()
    expect(one.data, {"id": 4, "name": "delta"}, "single")
    many = error_of(lambda: products().select("id").lt("id", 3).single().execute())
    expect((many.code, many.details), ("PGRST116", "The result contains 2 rows"), "single of two")
    expect(products().select("id").eq("id", 99).maybe_single().execute(), None, "maybe_single of none")


@check
def csv_and_stripped_nulls():
    text = products().select("id,name").lt("id", 3).order("id").csv().execute().data
    expect(text, "id,name\n1,alpha\n2,beta\n", "csv")
    stripped = products().select("id,data").eq("id", 10).strip_nulls().execute().data
    expect(stripped, [{"id": 10}], "nulls=stripped")


@check
def errors_have_postgrests_shape():
    missing_column = error_of(lambda: products().select("nope").execute())
    expect(missing_column.code, "42703", "unknown column")
    missing_table = error_of(lambda: alice.table("no_such_table").select("*").execute())
    expect(missing_table.code, "PGRST205", "unknown table")
    bad_filter = error_of(lambda: products().select("id").filter("id", "sideways", "1").execute())
    expect(bad_filter.code, "PGRST100", "unknown operator")
    duplicate = error_of(lambda: products().insert({"id": 1, "name": "again"}).execute())
    expect(duplicate.code, "23505", "duplicate key")
    if "duplicate key" not in (duplicate.message or ""):
        raise AssertionError(f"message: {duplicate.message!r}")


@check
def inserts_single_and_bulk():
    one = products().insert({"id": 11, "name": "lambda", "price": 11}).execute()
    expect([(row["id"], row["name"], row["stock"]) for row in one.data], [(11, "lambda", 7)], "single insert")
    bulk = products().insert([{"id": 12, "name": "mu"}, {"id": 13, "name": "nu", "price": 1}],
                             count=CountMethod.exact).execute()
    expect((ids(bulk), bulk.count), ([12, 13], 2), "bulk insert with count")
    # Missing keys are NULL by default, their defaults with default_to_null=False (missing=default).
    nulls = products().insert([{"id": 14, "name": "xi", "stock": 1}, {"id": 15, "name": "omicron"}]).execute()
    expect([row["stock"] for row in nulls.data], [1, None], "missing keys are null")
    defaults = products().insert([{"id": 16, "name": "pi", "stock": 1}, {"id": 17, "name": "rho"}],
                                 default_to_null=False).execute()
    expect(sorted((row["id"], row["stock"]) for row in defaults.data), [(16, 1), (17, 7)], "missing=default")
    minimal = products().insert({"id": 18, "name": "sigma"}, returning=ReturnMethod.minimal).execute()
    expect(minimal.data, [], "return=minimal")


@check
def upserts():
    merged = products().upsert([{"id": 11, "name": "lambda-2"}, {"id": 19, "name": "tau"}]).execute()
    expect(sorted((row["id"], row["name"]) for row in merged.data), [(11, "lambda-2"), (19, "tau")], "merge")
    ignored = products().upsert({"id": 11, "name": "ignored"}, ignore_duplicates=True).execute()
    expect(ignored.data, [], "ignore-duplicates returns nothing for the existing row")
    expect(products().select("name").eq("id", 11).single().execute().data, {"name": "lambda-2"}, "unchanged")
    by_name = products().upsert({"id": 19, "name": "tau", "price": 5}, on_conflict="name").execute()
    expect([(row["id"], row["price"]) for row in by_name.data], [(19, 5)], "on_conflict=name")


@check
def updates_and_deletes():
    updated = products().update({"price": 42}).gte("id", 18).order("id").execute()
    expect(sorted(ids(updated)), [18, 19], "update returns the rows")
    expect(products().select("price").eq("id", 18).single().execute().data, {"price": 42}, "updated")
    deleted = products().delete(count=CountMethod.exact).in_("id", [12, 13]).execute()
    expect((sorted(ids(deleted)), deleted.count), ([12, 13], 2), "delete returns the rows")
    too_many = error_of(lambda: products().update({"price": 0}).gt("id", 10).max_affected(2).execute())
    expect(too_many.code, "PGRST124", "max-affected")
    expect(products().select("price").eq("id", 11).single().execute().data, {"price": 11}, "rolled back")


@check
def profiles_pick_a_schema():
    notes = client(ALICE, schema="api").table("notes").select("*").order("id").execute()
    expect(notes.data, [{"id": 1, "body": "in the api schema"}], "Accept-Profile")
    client(ALICE, schema="api").table("notes").insert({"id": 2, "body": "written"}).execute()
    expect(len(client(ALICE, schema="api").table("notes").select("id").execute().data), 2, "Content-Profile")
    hidden = error_of(lambda: client(ALICE, schema="secret").table("notes").select("*").execute())
    expect(hidden.code, "PGRST106", "a schema not in api.rest_schemas")


@check
def row_level_security_per_role():
    mine = alice.table("readings").select("owner").execute().data
    theirs = bob.table("readings").select("owner").execute().data
    expect({row["owner"] for row in mine}, {"pgbridge_test_alice"}, "alice's rows")
    expect({row["owner"] for row in theirs}, {"pgbridge_test_bob"}, "bob's rows")
    refused = error_of(lambda: alice.table("readings").insert(
        {"id": 900, "time": "2026-01-01T00:00:00Z", "owner": "pgbridge_test_bob"}).execute())
    expect(refused.code, "42501", "a row the policy refuses")


@check
def embedding_many_to_one_with_hints():
    orders = alice.table("orders").select("id,customer:customers!orders_customer_id_fkey(name)").order("id").execute()
    expect(orders.data[0], {"id": 10, "customer": {"name": "Ann"}}, "hint by constraint")
    by_column = alice.table("orders").select("id,customers!billing_customer_id(name)").eq("id", 10).execute()
    expect(by_column.data, [{"id": 10, "customers": {"name": "Bo"}}], "hint by column")
    ambiguous = error_of(lambda: alice.table("orders").select("id,customers(name)").execute())
    expect(ambiguous.code, "PGRST201", "two foreign keys to customers")
    missing = error_of(lambda: alice.table("orders").select("id,nope(*)").execute())
    expect(missing.code, "PGRST200", "no relationship")


@check
def embedding_one_to_many_and_one_to_one():
    rows = alice.table("customers").select("name,orders!customer_id(id),profiles(bio)").order("id").execute().data
    expect([(row["name"], sorted(o["id"] for o in row["orders"]), row["profiles"]) for row in rows],
           [("Ann", [10, 11], {"bio": "likes apples"}), ("Bo", [12], None), ("Cy", [], None)], "arrays and objects")


@check
def embedding_many_to_many_through_a_junction():
    rows = alice.table("orders").select("id,items(name)").order("id").order("name", foreign_table="items").execute()
    expect(rows.data, [
        {"id": 10, "items": [{"name": "apple"}, {"name": "pear"}]},
        {"id": 11, "items": [{"name": "fig"}]},
        {"id": 12, "items": [{"name": "apple"}]},
    ], "m2m")


@check
def embedded_filters_order_limit_inner_and_spread():
    limited = alice.table("orders").select("id,items(name)").eq("id", 10).order(
        "name", desc=True, foreign_table="items").limit(1, foreign_table="items").execute()
    expect(limited.data, [{"id": 10, "items": [{"name": "pear"}]}], "embedded order and limit")
    filtered = alice.table("orders").select("id,items(name)").eq("id", 10).eq("items.name", "apple").execute()
    expect(filtered.data, [{"id": 10, "items": [{"name": "apple"}]}], "embedded filter")
    either = alice.table("orders").select("id,items(name)").eq("id", 10).or_(
        "name.eq.pear,name.eq.fig", reference_table="items").execute()
    expect(either.data, [{"id": 10, "items": [{"name": "pear"}]}], "embedded or")
    inner = alice.table("customers").select("name,orders!customer_id!inner(id)").eq("orders.id", 12).execute()
    expect(inner.data, [{"name": "Bo", "orders": [{"id": 12}]}], "!inner keeps parents with a match")
    spread = alice.table("orders").select("id,...customers!customer_id(customer_name:name)").order("id").execute()
    expect(spread.data[0], {"id": 10, "customer_name": "Ann"}, "spread")
    nested = alice.table("customers").select("name,orders!customer_id(id,items(name))").eq("id", 2).execute()
    expect(nested.data, [{"name": "Bo", "orders": [{"id": 12, "items": [{"name": "apple"}]}]}], "nested")
    stray = error_of(lambda: alice.table("orders").select("id").eq("items.name", "x").execute())
    expect(stray.code, "PGRST108", "a filter on a resource not embedded")


@check
def rpc_scalars_defaults_and_single_json():
    expect(alice.rpc("add_them", {"a": 1, "b": 2}).execute().data, 3, "POST")
    expect(alice.rpc("add_them", {"a": 4, "b": 5}, get=True).execute().data, 9, "GET")
    expect(alice.rpc("greet", {"name": "Ann"}).execute().data, "hello Ann", "a default argument")
    expect(alice.rpc("ids_up_to", {"n": 3}).execute().data, [1, 2, 3], "a set of scalars")
    expect(alice.rpc("echo_body", {"x": [1, 2]}).execute().data, {"x": [1, 2]}, "one unnamed json parameter")
    expect(alice.rpc("do_nothing", {}).execute().data, [], "void: 204")
    missing = error_of(lambda: alice.rpc("no_such_function", {}).execute())
    expect(missing.code, "PGRST202", "unknown function")
    wrong = error_of(lambda: alice.rpc("add_them", {"a": 1}).execute())
    expect(wrong.code, "PGRST202", "a required argument missing")


@check
def rpc_rows_with_filters_counts_and_writes():
    cheap = alice.rpc("products_cheaper_than", {"max_price": 3}).select("id,name").order("id").execute()
    expect(cheap.data, [{"id": 1, "name": "alpha"}, {"id": 2, "name": "beta"}], "a set of rows")
    filtered = alice.rpc("products_cheaper_than", {"max_price": 3}, get=True).select("id").eq("id", 2).execute()
    expect(filtered.data, [{"id": 2}], "filtered GET")
    counted = alice.rpc("products_cheaper_than", {"max_price": 3}, count=CountMethod.exact).select("id").order(
        "id").limit(1).execute()
    expect((counted.data, counted.count), ([{"id": 1}], 2), "count and limit")
    renamed = alice.rpc("rename_product", {"product_id": 4, "new_name": "delta-2"}).execute()
    expect((renamed.data["id"], renamed.data["name"]), (4, "delta-2"), "a composite result is one object")
    read_only = error_of(lambda: alice.rpc("rename_product", {"product_id": 4, "new_name": "x"}, get=True).execute())
    expect(read_only.code, "25006", "GET runs read-only")


@check
def openapi_description_of_the_schema():
    import httpx
    document = httpx.get(BASE + "/", headers={"Authorization": f"Bearer {ALICE}"}).json()
    expect(document["openapi"].startswith("3."), True, "OpenAPI 3")
    for path in ["/products", "/customers", "/orders", "/rpc/add_them", "/rpc/products_cheaper_than"]:
        if path not in document["paths"]:
            raise AssertionError(f"{path} is not described: {sorted(document['paths'])}")
    products_schema = document["components"]["schemas"]["products"]
    expect(products_schema["properties"]["id"]["type"], "integer", "id's type")
    expect(products_schema["properties"]["tags"]["type"], "array", "tags' type")
    if "Primary Key" not in products_schema["properties"]["id"].get("description", ""):
        raise AssertionError(f"the key is not marked: {products_schema['properties']['id']}")
    expect(sorted(products_schema["required"]), ["id", "name"], "required columns")
    expect("patch" in document["paths"]["/customers"], False, "alice may not update customers")
    expect("get" in document["paths"]["/rpc/add_them"], True, "immutable functions take GET")
    expect("get" in document["paths"]["/rpc/rename_product"], False, "volatile functions do not")
    expect("/readings" in document["paths"], True, "readings")
    hidden = httpx.get(BASE + "/", headers={"Authorization": f"Bearer {BOB}"}).json()
    expect("/products" in hidden["paths"], False, "bob may not read products: not described for him")


for result in results:
    print(json.dumps(result))
sys.exit(0 if all(result["ok"] for result in results) else 1)
