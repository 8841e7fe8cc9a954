//! Default initialisation checked against PyTorch: same seed, same draws, same values.
//! One test in its own process, so no other test draws from the global generator.

mod nn {
    use ktorch_core::{Module, Value};

    /// Parameter name, sum and first value.
    type Expect = Vec<(&'static str, f64, f64)>;

    fn module(kind: &str, args: &[i64], kw: Option<(&str, Value)>) -> Module {
        let mut v = vec![Value::from(kind)];
        v.extend(args.iter().map(|x| Value::Int(*x)));
        if let Some((k, x)) = kw {
            v.push(Value::Dict(vec![(k.to_string(), x)]));
        }
        Module::from_value(&Value::Tuple(v)).expect("module")
    }

    /// `torch.manual_seed(7)`, then these modules built in order, as printed by PyTorch 2.11:
    /// (parameter, sum, first value).
    #[test]
    fn seeded_init_matches_pytorch() {
        tch::manual_seed(7);
        let cases: Vec<(Module, Expect)> = vec![
            (
                module("conv2d", &[1, 16, 3], None),
                vec![
                    ("weight", -0.46553, 0.023282),
                    ("bias", -0.67276, -0.309455),
                ],
            ),
            (
                module("linear", &[4, 3], None),
                vec![("weight", -1.0549, -0.131642), ("bias", 0.18859, 0.421355)],
            ),
            (
                module("embed", &[10, 4, 1], None),
                vec![("weight", -1.39687, -0.623874)],
            ),
            (
                module("lstm", &[3, 5], None),
                vec![
                    ("weight_ih_l0", -0.90327, 0.103499),
                    ("weight_hh_l0", 0.52477, -0.13182),
                    ("bias_ih_l0", 0.3638, -0.36806),
                    ("bias_hh_l0", -1.12685, -0.335987),
                ],
            ),
            (
                module("bilinear", &[3, 4, 5], None),
                vec![("weight", 1.50075, -0.381058), ("bias", 0.35185, 0.468048)],
            ),
            (
                module(
                    "convtranspose1d",
                    &[4, 6, 3],
                    Some(("groups", Value::Int(2))),
                ),
                vec![("weight", 0.11369, 0.275803), ("bias", -0.17881, -0.071846)],
            ),
            (
                module("gru", &[2, 3], Some(("bi", Value::Bool(true)))),
                vec![
                    ("weight_ih_l0", 1.74693, 0.416757),
                    ("weight_hh_l0", -1.61104, -0.307106),
                    ("bias_ih_l0", -1.23467, 0.127076),
                    ("bias_hh_l0", -0.5982, -0.417968),
                    ("weight_ih_l0_reverse", 0.22825, -0.063986),
                    ("weight_hh_l0_reverse", -0.85813, -0.291426),
                    ("bias_ih_l0_reverse", -1.71377, 0.027174),
                    ("bias_hh_l0_reverse", -0.7821, 0.341654),
                ],
            ),
        ];
        for (m, want) in cases {
            let got = m.named_parameters();
            assert_eq!(got.len(), want.len(), "{}", m.kind());
            for ((name, t), (wname, sum, first)) in got.iter().zip(want) {
                assert_eq!(name, wname, "{}", m.kind());
                let s = t.sum(tch::Kind::Double).double_value(&[]);
                let f = t.flatten(0, -1).double_value(&[0]);
                assert!(
                    (s - sum).abs() < 1e-4 && (f - first).abs() < 1e-5,
                    "{} {name}: sum {s}, first {f}",
                    m.kind()
                );
            }
        }
    }
}
