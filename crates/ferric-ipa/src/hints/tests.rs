//! Table tests for root device hints, most cases taken from the behaviour
//! IPA's and Ironic's own device-hint tests pin down.

use super::*;
use serde_json::json;

fn parse(v: Value) -> Value {
    RootDeviceHints::parse(&v).unwrap().unwrap().to_value()
}

#[test]
fn parses_without_operators() {
    let got = parse(json!({
        "wwn": "123456", "model": "FOO model", "size": 12345,
        "serial": "foo-serial", "vendor": "foo VENDOR with space",
        "name": "/dev/sda", "wwn_with_extension": "123456111",
        "wwn_vendor_extension": "111", "rotational": true,
        "hctl": "1:0:0:0", "by_path": "/dev/disk/by-path/1:0:0:0"
    }));
    assert_eq!(
        got,
        json!({
            "wwn": "s== 123456", "model": "s== foo%20model",
            "size": "== 12345", "serial": "s== foo-serial",
            "vendor": "s== foo%20vendor%20with%20space",
            "name": "s== /dev/sda", "wwn_with_extension": "s== 123456111",
            "wwn_vendor_extension": "s== 111", "rotational": true,
            "hctl": "s== 1%3A0%3A0%3A0",
            "by_path": "s== /dev/disk/by-path/1%3A0%3A0%3A0"
        })
    );
}

#[test]
fn parses_with_operators() {
    let got = parse(json!({
        "wwn": "s== 123456", "model": "s== foo MODEL", "size": ">= 12345",
        "serial": "s!= foo-serial", "vendor": "s== foo VENDOR with space",
        "name": "<or> /dev/sda <or> /dev/sdb",
        "wwn_with_extension": "s!= 123456111",
        "wwn_vendor_extension": "s== 111", "rotational": true,
        "hctl": "s== 1:0:0:0", "by_path": "s== /dev/disk/by-path/1:0:0:0"
    }));
    assert_eq!(
        got,
        json!({
            "wwn": "s== 123456", "model": "s== foo%20model", "size": ">= 12345",
            "serial": "s!= foo-serial", "vendor": "s== foo%20vendor%20with%20space",
            "name": "<or> /dev/sda <or> /dev/sdb",
            "wwn_with_extension": "s!= 123456111",
            "wwn_vendor_extension": "s== 111", "rotational": true,
            "hctl": "s== 1%3A0%3A0%3A0", "by_path": "s== /dev/disk/by-path/1%3A0%3A0%3A0"
        })
    );
}

#[test]
fn parse_table() {
    let cases: &[(Value, Value)] = &[
        (json!({"size": 12345}), json!({"size": "== 12345"})),
        (json!({"size": "12345"}), json!({"size": "== 12345"})),
        (
            json!({"size": "<or> 123 <or> 456 <or> 789"}),
            json!({"size": "<or> 123 <or> 456 <or> 789"}),
        ),
        (
            json!({"size": "<range-in> [ 10 20 ]"}),
            json!({"size": "<range-in> [ 10 20 ]"}),
        ),
        (json!({"size": ">=100"}), json!({"size": ">=100"})),
        (
            json!({"model": "<or> foo <or> foo bar <or> bar"}),
            json!({"model": "<or> foo <or> foo%20bar <or> bar"}),
        ),
        (
            json!({"model": "<in> foo <in> foo bar <in> bar"}),
            json!({"model": "<in> foo <in> foo%20bar <in> bar"}),
        ),
        (
            json!({"model": "s== test string with space"}),
            json!({"model": "s== test%20string%20with%20space"}),
        ),
        (
            json!({"model": "s!= SpongeBob"}),
            json!({"model": "s!= spongebob"}),
        ),
        (
            json!({"model": "no operators"}),
            json!({"model": "s== no%20operators"}),
        ),
        (json!({"model": "NoSpace"}), json!({"model": "s== nospace"})),
        (
            json!({"name": "s== /dev/sdb"}),
            json!({"name": "s== /dev/sdb"}),
        ),
        (json!({"name": "sda"}), json!({"name": "s== /dev/sda"})),
        (
            json!({"name": "<or> sda <or> /dev/vdb"}),
            json!({"name": "<or> /dev/sda <or> /dev/vdb"}),
        ),
        (json!({"tran": "NVMe"}), json!({"tran": "s== nvme"})),
        (json!({"rotational": "yes"}), json!({"rotational": true})),
        (json!({"rotational": "off"}), json!({"rotational": false})),
        (json!({"rotational": 1}), json!({"rotational": true})),
        (json!({"rotational": false}), json!({"rotational": false})),
    ];
    for (input, want) in cases {
        assert_eq!(&parse(input.clone()), want, "{input}");
    }
}

#[test]
fn empty_hints_are_none() {
    assert_eq!(RootDeviceHints::parse(&json!({})).unwrap(), None);
    assert_eq!(RootDeviceHints::parse(&Value::Null).unwrap(), None);
}

#[test]
fn invalid_hints_table() {
    let cases: &[(Value, &str)] = &[
        (json!({"size": "not-int"}), "Root device hint \"size\" is not an integer value. Current value: not-int"),
        (json!({"size": -123}), "Root device hint \"size\" should be a positive integer. Current value: -123"),
        (json!({"size": 0}), "Root device hint \"size\" should be a positive integer. Current value: 0"),
        (json!({"size": 12.5}), "Root device hint \"size\" is not an integer value. Current value: 12.5"),
        (json!({"size": "<or> 123 <or> non-int <or> 789"}), "Root device hint \"size\" is not an integer value. Current value: <or> 123 <or> non-int <or> 789"),
        (json!({"rotational": "not-bool"}), "Root device hint \"rotational\" is not a Boolean value. Current value: not-bool"),
        (json!({"wwn": 123}), "Root device hint \"wwn\" is not a string value. Hint expression: 123"),
        (json!({"wwn_with_extension": 123}), "Root device hint \"wwn_with_extension\" is not a string value. Hint expression: 123"),
        (json!({"wwn_vendor_extension": 123}), "Root device hint \"wwn_vendor_extension\" is not a string value. Hint expression: 123"),
        (json!({"model": 123}), "Root device hint \"model\" is not a string value. Hint expression: 123"),
        (json!({"serial": 123}), "Root device hint \"serial\" is not a string value. Hint expression: 123"),
        (json!({"vendor": 123}), "Root device hint \"vendor\" is not a string value. Hint expression: 123"),
        (json!({"name": 123}), "Root device hint \"name\" is not a string value. Hint expression: 123"),
        (json!({"hctl": 123}), "Root device hint \"hctl\" is not a string value. Hint expression: 123"),
        (json!({"by_path": 123}), "Root device hint \"by_path\" is not a string value. Hint expression: 123"),
        (json!({"model": ""}), "Root device hint model expression is empty"),
        (json!({"model": "   "}), "Root device hint model expression is empty"),
        (json!({"model": "<in>"}), "Root device hint \"model\" cannot be parsed. Hint expression: <in>"),
    ];
    for (input, want) in cases {
        let err = RootDeviceHints::parse(input).unwrap_err();
        assert_eq!(err.to_string(), *want, "{input}");
    }
    let unknown = RootDeviceHints::parse(&json!({"non-existent": "foo", "size": 1})).unwrap_err();
    assert!(unknown
        .to_string()
        .starts_with("The hints \"non-existent\" are invalid. Valid hints are: \"size, model,"));
    assert!(RootDeviceHints::parse(&json!("size")).is_err());
    assert!(RootDeviceHints::parse(&json!([1])).is_err());
}

fn devices() -> Vec<Value> {
    vec![
        json!({"name": "/dev/sda", "size": 64424509440u64, "model": "ok model", "serial": "fakeserial", "wwn": "wwn_1"}),
        json!({"name": "/dev/sdb", "size": 128849018880u64, "model": "big model",
               "serial": ["veryfakeserial", "alsoveryfakeserial"], "rotational": "yes", "wwn": ["wwn_2", "wwn_2_ext"]}),
        json!({"name": "/dev/sdc", "size": 10737418240u64, "model": "small model", "serial": "veryveryfakeserial",
               "rotational": false, "wwn": "wwn_3"}),
    ]
}

fn first_match(hints: Value) -> Option<String> {
    let hints = RootDeviceHints::parse(&hints).unwrap().unwrap();
    let devs = devices();
    hints
        .find_first(&devs)
        .map(|d| d["name"].as_str().unwrap().to_owned())
}

#[test]
fn match_table() {
    let cases: &[(Value, Option<&str>)] = &[
        (json!({"size": ">= 70"}), Some("/dev/sdb")),
        (json!({"rotational": false}), Some("/dev/sdc")),
        (
            json!({"size": ">=100", "rotational": true}),
            Some("/dev/sdb"),
        ),
        (
            json!({"size": ">= 50", "model": "s==big model", "serial": "s==veryfakeserial"}),
            Some("/dev/sdb"),
        ),
        (
            json!({"size": "<= 20", "model": "<or> model 5 <or> foomodel <or> small model <or>", "serial": "s== veryveryfakeserial"}),
            Some("/dev/sdc"),
        ),
        (
            json!({"rotational": false, "model": "<in> small"}),
            Some("/dev/sdc"),
        ),
        (json!({"wwn": "wwn_2_ext"}), Some("/dev/sdb")),
        (
            json!({"size": "120", "model": "big model", "serial": "veryfakeserial"}),
            Some("/dev/sdb"),
        ),
        (json!({"size": ">=50", "model": "s==foo"}), None),
        (json!({"name": "s== /dev/sda"}), Some("/dev/sda")),
        (json!({"name": "sdb"}), Some("/dev/sdb")),
        (json!({"name": "/dev/sdb"}), Some("/dev/sdb")),
        (json!({"name": "<in> sdc"}), Some("/dev/sdc")),
        (json!({"serial": "s== fakeserial"}), Some("/dev/sda")),
        (
            json!({"serial": "s== alsoveryfakeserial"}),
            Some("/dev/sdb"),
        ),
        (json!({"serial": "FAKESERIAL"}), Some("/dev/sda")),
        (json!({"wwn": "s== wwn_1"}), Some("/dev/sda")),
        (json!({"wwn": "s== wwn_2"}), Some("/dev/sdb")),
        (json!({"size": "== 60"}), Some("/dev/sda")),
        (json!({"size": "!= 60"}), Some("/dev/sdb")),
        (json!({"size": "< 60"}), Some("/dev/sdc")),
        (json!({"size": "> 60"}), Some("/dev/sdb")),
        (json!({"size": "= 61"}), Some("/dev/sdb")),
        (json!({"size": "<range-in> [ 10 20 ]"}), Some("/dev/sdc")),
        (json!({"size": "<range-in> ( 10 20 ]"}), None),
        (json!({"size": "<range-in> [ 60 120 )"}), Some("/dev/sda")),
        (json!({"size": "<range-in> ( 60 120 ]"}), Some("/dev/sdb")),
        (json!({"size": "<or> 10 <or> 120"}), Some("/dev/sdb")),
        (json!({"model": "s> big model"}), Some("/dev/sda")),
        (json!({"model": "s< ok"}), Some("/dev/sdb")),
        (json!({"model": "s>= small model"}), Some("/dev/sdc")),
        (json!({"model": "s<= big model"}), Some("/dev/sdb")),
        (json!({"model": "s!= ok model"}), Some("/dev/sdb")),
        (json!({"vendor": "none"}), Some("/dev/sda")),
        (json!({"hctl": "1:0:0:0"}), None),
        (json!({"tran": "sata"}), None),
    ];
    for (hints, want) in cases {
        assert_eq!(first_match(hints.clone()).as_deref(), *want, "{hints}");
    }
}

#[test]
fn finds_all_and_none() {
    let devs = devices();
    let all = RootDeviceHints::parse(&json!({"size": ">= 10"}))
        .unwrap()
        .unwrap();
    assert_eq!(all.find_all(&devs).count(), 3);
    let none = RootDeviceHints::parse(&json!({"size": ">= 100500"}))
        .unwrap()
        .unwrap();
    assert_eq!(none.find_all(&devs).count(), 0);
}

#[test]
fn empty_device_attribute_never_matches() {
    let devs = vec![json!({"name": "/dev/sda", "model": " "})];
    let hints = RootDeviceHints::parse(&json!({"model": "foo"}))
        .unwrap()
        .unwrap();
    assert!(hints.find_first(&devs).is_none());
    let no_serials = vec![json!({"name": "/dev/sda", "serial": [null, null]})];
    let serial = RootDeviceHints::parse(&json!({"serial": "none"}))
        .unwrap()
        .unwrap();
    assert!(serial.find_first(&no_serials).is_none());
}

fn block(name: &str, gib: u64) -> BlockDevice {
    BlockDevice {
        name: name.into(),
        size: gib * 1024 * 1024 * 1024,
        ..Default::default()
    }
}

#[test]
fn block_devices_match_like_dicts() {
    let mut disks = vec![block("/dev/sda", 100), block("/dev/nvme0n1", 400)];
    disks[1].serial = Some("S5GXNX0R".into());
    disks[1].wwn = Some("eui.0025388b71b12345".into());
    disks[1].tran = Some("nvme".into());
    disks[0].rotational = true;
    let pick = |h: Value| choose_root_device(&disks, Some(&h)).map(|d| d.name.clone());
    assert_eq!(pick(json!({"serial": "s5gxnx0r"})).unwrap(), "/dev/nvme0n1");
    assert_eq!(pick(json!({"tran": "nvme"})).unwrap(), "/dev/nvme0n1");
    assert_eq!(pick(json!({"rotational": true})).unwrap(), "/dev/sda");
    assert_eq!(
        pick(json!({"wwn": "<in> 0025388b"})).unwrap(),
        "/dev/nvme0n1"
    );
    assert_eq!(pick(json!({"name": "nvme0n1"})).unwrap(), "/dev/nvme0n1");
    // No serial on sda: a serial hint can never pick it.
    assert!(pick(json!({"serial": "none"})).is_err());
}

#[test]
fn chooses_like_ipa_without_hints() {
    let disks = vec![
        block("/dev/sdb", 10),
        block("/dev/sda", 10),
        block("/dev/sdc", 2),
        block("/dev/vda", 500),
    ];
    assert_eq!(choose_root_device(&disks, None).unwrap().name, "/dev/sda");
    let small = vec![block("/dev/sda", 2)];
    assert_eq!(
        choose_root_device(&small, None).unwrap_err().to_string(),
        "No suitable device was found for deployment - root device hints were not provided and all found block devices are smaller than 4294967296B."
    );
    assert_eq!(guess_root_disk(&small, 1).unwrap().name, "/dev/sda");
    assert_eq!(
        choose_root_device(&disks, Some(&json!({}))).unwrap().name,
        "/dev/sda"
    );
}

#[test]
fn choice_errors_read_like_ipa() {
    let disks = vec![block("/dev/sda", 10)];
    let none = choose_root_device(&disks, Some(&json!({"size": 20}))).unwrap_err();
    assert_eq!(
        none.to_string(),
        "No suitable device was found for deployment using these hints {'size': 20}"
    );
    let bad = choose_root_device(&disks, Some(&json!({"size": "x"}))).unwrap_err();
    assert_eq!(
        bad.to_string(),
        "No devices could be found using the root device hints {'size': 'x'} because they failed to validate. Error: Root device hint \"size\" is not an integer value. Current value: x"
    );
}

#[test]
fn grammar_matches_pyparsing() {
    let cases: &[(&str, Option<&[&str]>)] = &[
        ("s== foo", Some(&["s==", "foo"])),
        ("s==foo", Some(&["s==", "foo"])),
        (">=100", Some(&[">=", "100"])),
        ("= 5", Some(&["=", "5"])),
        ("== 5", Some(&["==", "5"])),
        ("<or> a <or> b", Some(&["<or>", "a", "b"])),
        ("<or> a b <or> c", Some(&["<or>", "a"])),
        ("<all-in> a b", Some(&["<all-in>", "a", "b"])),
        (
            "<range-in> [ 1 2 ]",
            Some(&["<range-in>", "[", "1", "2", "]"]),
        ),
        ("<range-in> [1 2]", Some(&["<", "range-in>"])),
        ("plain", Some(&["plain"])),
        ("foo bar", Some(&["foo"])),
        ("<in>", None),
        ("==", None),
        ("", None),
        ("   ", None),
    ];
    for (text, want) in cases {
        let got = parse_spec(text);
        let want = want.map(|w| w.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        assert_eq!(got, want, "{text:?}");
    }
}

#[test]
fn quotes_like_python() {
    assert_eq!(quote("foo bar:1/2"), "foo%20bar%3A1/2");
    assert_eq!(quote("a_b.c-d~e"), "a_b.c-d~e");
    assert_eq!(quote("é"), "%C3%A9");
}

#[test]
fn python_ints() {
    assert_eq!(python_int_is_positive("12"), Some(true));
    assert_eq!(python_int_is_positive(" +1_000 "), Some(true));
    assert_eq!(python_int_is_positive("-5"), Some(false));
    assert_eq!(python_int_is_positive("000"), Some(false));
    assert_eq!(python_int_is_positive("1__0"), None);
    assert_eq!(python_int_is_positive("1.5"), None);
    assert_eq!(
        python_int_is_positive("99999999999999999999999999"),
        Some(true)
    );
}

#[test]
fn survives_arbitrary_input() {
    let samples = [
        "<",
        "<<<<",
        "s",
        "s=",
        "<or>",
        "<or> <or>",
        "<range-in>",
        "<range-in> [ a b ]",
        "\u{0}",
        "<all-in>",
        "== ==",
        "%%%",
        "<in> <in>",
        "= = =",
    ];
    for s in samples {
        for key in ["size", "model", "name", "rotational"] {
            let _ = RootDeviceHints::parse(&json!({key: s})).map(|h| {
                if let Some(h) = h {
                    let _ = h.find_first(&devices());
                }
            });
        }
    }
}
