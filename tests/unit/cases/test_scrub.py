"""Free-text scrubbing for the desensitised export: real-looking citizen and caller texts with each kind of
number that names a person (mobile, landline, +86 forms, 18- and 15-digit resident IDs, e-mail), and the
numbers a department needs that must survive (grid codes, component ids, house numbers, dates, tickets)."""

from __future__ import annotations

import pytest

from gridsentinel.cases.scrub import scrub, scrub_counted

pytestmark = pytest.mark.unit
GRID = {"320582004001001", "320582004001003"}


@pytest.mark.parametrize(("text", "expected"), [
    # Chinese mobiles: plain, grouped, with the country code in its three spellings, full-width
    ("暨阳中路2号井盖没了，请回电13912345678", "暨阳中路2号井盖没了，请回电[phone]"),
    ("联系人王先生 139 1234 5678", "联系人王先生 [phone]"),
    ("手机：139-1234-5678。", "手机：[phone]。"),
    ("+86 13912345678 (微信同号)", "[phone] (微信同号)"),
    ("0086-139-1234-5678", "[phone]"),
    ("（+86）13912345678", "[phone]"),
    ("我的号码１３９１２３４５６７８", "我的号码[phone]"),
    # landlines with an area code, extensions, international form without the area code's 0
    ("物业电话0512-58761234，白天有人", "物业电话[phone]，白天有人"),
    ("(0512)58761234转801", "[phone]"),
    ("北京010-62345678-123的来电", "北京[phone]的来电"),
    ("请拨 021 6234 5678", "请拨 [phone]"),
    ("+86 512 5876 1234", "[phone]"),
    ("+86-10-62345678", "[phone]"),
    # a local number without area code is scrubbed only when announced
    ("座机58761234", "座机[phone]"),
    ("Tel: 5876 1234", "Tel: [phone]"),
    # resident IDs: 18 digits with digit or X check character (any case, grouped), 15-digit old IDs
    ("身份证320582199001011234", "身份证[id]"),
    ("身份证号32058219900101123X，请核实", "身份证号[id]，请核实"),
    ("证件 320582 19900101 123x", "证件 [id]"),
    ("老身份证320582900101123", "老身份证[id]"),
    # e-mail
    ("照片发到 wang.li+311@example.com.cn 了", "照片发到 [email] 了"),
    ("mail: li_ming2026@163.com", "mail: [email]"),
])
def test_personal_numbers_are_replaced(text: str, expected: str) -> None:
    assert scrub(text, GRID) == expected


@pytest.mark.parametrize("text", [
    "网格320582004001001内雨水井盖缺失",  # a grid code of the city (15 digits) survives in free text
    "部件编码3205820102048188的井盖松动",  # a 16-digit component id
    "暨阳中路88号门口，2026-12-05 09:12 发现",  # house number, date and time
    "工单12345-20261205-0042，12345热线转来",  # ticket number and the hotline's number
    "损失约3000元，积水深25cm",  # amounts and measures
    "报警打110，火警119",
    "客服400-820-8820",  # company lines are not personal
    "坐标31.872450,120.550328",
    "订单号13912345678901",  # a mobile-looking prefix inside a longer number is not a phone
])
def test_numbers_a_department_needs_survive(text: str) -> None:
    assert scrub(text, GRID) == text


def test_a_15_digit_number_that_is_not_a_city_grid_code_is_scrubbed() -> None:
    # recall first: a 15-digit run is an old ID unless it is one of the city's cells
    assert scrub("网格320582004001001与320582004009999", GRID) == "网格320582004001001与[id]"
    assert scrub("网格320582004001001", ()) == "网格[id]"


def test_counts_say_what_was_removed() -> None:
    done = scrub_counted("13912345678 / 0512-58761234 / 32058219900101123X / a@b.cn", GRID)
    assert (done.phones, done.ids, done.emails) == (2, 1, 1)
    assert done.text == "[phone] / [phone] / [id] / [email]"
