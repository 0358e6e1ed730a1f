import Foundation

/// The regularized incomplete gamma functions P(a, x) = γ(a, x)/Γ(a) and Q = 1 − P, each computed
/// where it is accurate — the series of P for x < a + 1, Lentz's continued fraction of Q above
/// (Numerical Recipes §6.2) — so that a tiny P (a Sérsic core's flux) and a tiny Q (a p-value)
/// both keep their relative accuracy (~1e-14).
public enum IncompleteGamma {
    public static func regularized(_ a: Double, _ x: Double) -> (p: Double, q: Double) {
        precondition(a > 0, "incomplete gamma needs a > 0")
        guard x > 0 else { return (0, 1) }
        let logPrefactor = a * Foundation.log(x) - x - Foundation.lgamma(a)
        if x < a + 1 {
            var term = 1 / a, sum = term, n = a
            for _ in 0..<10_000 {
                n += 1
                term *= x / n
                sum += term
                if abs(term) < abs(sum) * 1e-16 { break }
            }
            let p = min(1, sum * Foundation.exp(logPrefactor))
            return (p, max(0, 1 - p))
        }
        let tiny = 1e-300
        var b = x + 1 - a, c = 1 / tiny, d = 1 / b, h = d
        for i in 1...10_000 {
            let an = -Double(i) * (Double(i) - a)
            b += 2
            d = an * d + b
            if abs(d) < tiny { d = tiny }
            c = b + an / c
            if abs(c) < tiny { c = tiny }
            d = 1 / d
            let delta = d * c
            h *= delta
            if abs(delta - 1) < 1e-16 { break }
        }
        let q = min(1, Foundation.exp(logPrefactor) * h)
        return (max(0, 1 - q), q)
    }
}
