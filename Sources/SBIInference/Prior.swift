import Foundation
import SBIData
import SBIBackend
import SBIModels

/// A prior over parameters θ: box-uniform or Gaussian (diagonal or full covariance).
///
/// - Densities are evaluated in double precision; the log-density is −∞ outside a uniform's
///   support, which is the closed box [low, high].
/// - Draws come from the Philox stream of `seed` (see `PhiloxDraws`): draw i, dimension j uses
///   stream position i·d + j, so the first n draws of a larger sample are the n draws of a
///   smaller one, and every machine and backend gets the same numbers.
/// - On the command line a prior is one or more `--prior` specs (see `parse`).
/// - Without a prior, `inferred(fromTheta:dimension:)` builds a box-uniform from training θ.
public enum Prior: Equatable, Sendable, Codable {
    /// Independent U(low_i, high_i).
    case uniform(low: [Double], high: [Double])
    /// N(mean, covariance), covariance row-major d×d.
    case gaussian(mean: [Double], covariance: [Double])

    public var dimension: Int {
        switch self {
        case let .uniform(low, _): return low.count
        case let .gaussian(mean, _): return mean.count
        }
    }

    // MARK: construction

    /// A validated box-uniform prior: matching non-empty bounds, finite, low < high everywhere.
    public static func boxUniform(low: [Double], high: [Double]) throws -> Prior {
        let prior = Prior.uniform(low: low, high: high)
        try prior.validate()
        return prior
    }

    /// A validated Gaussian with independent dimensions N(mean_i, std_i²).
    public static func diagonalGaussian(mean: [Double], std: [Double]) throws -> Prior {
        guard mean.count == std.count else {
            throw SBIError.sizeMismatch("Gaussian prior: \(mean.count) means but \(std.count) standard deviations")
        }
        guard std.allSatisfy({ $0.isFinite && $0 > 0 }) else {
            throw SBIError.invalidArgument("Gaussian prior: standard deviations must be finite and positive, got \(std)")
        }
        let d = mean.count
        var covariance = [Double](repeating: 0, count: d * d)
        for i in 0..<d { covariance[i * d + i] = std[i] * std[i] }
        let prior = Prior.gaussian(mean: mean, covariance: covariance)
        try prior.validate()
        return prior
    }

    /// A validated Gaussian with a full covariance (row-major d×d, as read from arrays): it must
    /// be symmetric (to 1e-9 of its largest entry) and positive definite.
    public static func fullCovarianceGaussian(mean: [Double], covariance: [Double]) throws -> Prior {
        let prior = Prior.gaussian(mean: mean, covariance: covariance)
        try prior.validate()
        return prior
    }

    /// Throws when the bounds, mean or covariance are inconsistent (for priors built directly
    /// from the cases or decoded from a file).
    public func validate() throws {
        switch self {
        case let .uniform(low, high):
            guard !low.isEmpty else { throw SBIError.invalidArgument("uniform prior: no dimensions") }
            guard low.count == high.count else {
                throw SBIError.sizeMismatch("uniform prior: \(low.count) lower bounds but \(high.count) upper bounds")
            }
            for j in 0..<low.count {
                guard low[j].isFinite, high[j].isFinite, low[j] < high[j] else {
                    throw SBIError.invalidArgument(
                        "uniform prior: dimension \(j) needs finite bounds with low < high, got [\(low[j]), \(high[j])]")
                }
                try Prior.checkSinglePrecision(location: max(abs(low[j]), abs(high[j])), width: high[j] - low[j],
                                               "uniform prior: dimension \(j), [\(low[j]), \(high[j])]")
            }
        case let .gaussian(mean, covariance):
            let d = mean.count
            guard d > 0 else { throw SBIError.invalidArgument("Gaussian prior: no dimensions") }
            guard covariance.count == d * d else {
                throw SBIError.sizeMismatch("Gaussian prior: covariance has \(covariance.count) entries, needs \(d)×\(d) = \(d * d)")
            }
            guard mean.allSatisfy(\.isFinite), covariance.allSatisfy(\.isFinite) else {
                throw SBIError.invalidArgument("Gaussian prior: mean and covariance must be finite")
            }
            let scale = covariance.map(abs).max() ?? 0
            for i in 0..<d {
                for j in (i + 1)..<d where abs(covariance[i * d + j] - covariance[j * d + i]) > 1e-9 * scale {
                    throw SBIError.invalidArgument(
                        "Gaussian prior: covariance is not symmetric (entries [\(i),\(j)] = \(covariance[i * d + j]) and [\(j),\(i)] = \(covariance[j * d + i]))")
                }
            }
            guard Prior.cholesky(covariance, d) != nil else {
                throw SBIError.invalidArgument("Gaussian prior: covariance is not positive definite")
            }
            for i in 0..<d {
                let std = covariance[i * d + i].squareRoot()
                try Prior.checkSinglePrecision(location: abs(mean[i]) + 10 * std, width: std,
                                               "Gaussian prior: dimension \(i), mean \(mean[i]) and standard deviation \(std)")
            }
        }
    }

    /// θ is single precision in the engine (draws, training data, samples): a prior must lie
    /// inside Float's range, and be wide enough for Float to resolve around its location (at
    /// least 2⁻²⁰ of it, 16 ulps); otherwise its draws round to infinities or outside its support.
    private static func checkSinglePrecision(location: Double, width: Double, _ what: String) throws {
        let range = Double(Float.greatestFiniteMagnitude) / 2
        guard location <= range else {
            throw SBIError.invalidArgument("\(what): exceeds single precision (θ must stay within ±\(range))")
        }
        guard width >= max(location * 0x1p-20, Double(Float.leastNormalMagnitude) * 0x1p20) else {
            throw SBIError.invalidArgument("\(what): too narrow for single precision to resolve (θ is float32; rescale θ)")
        }
    }

    // MARK: moments and support

    /// The mean of each dimension.
    public var mean: [Double] {
        switch self {
        case let .uniform(low, high): return zip(low, high).map { ($0 + $1) / 2 }
        case let .gaussian(mean, _): return mean
        }
    }

    /// The standard deviation of each dimension: (high − low)/√12 for a uniform.
    public var standardDeviation: [Double] {
        switch self {
        case let .uniform(low, high): return zip(low, high).map { ($1 - $0) / 12.0.squareRoot() }
        case let .gaussian(mean, covariance):
            let d = mean.count
            return (0..<d).map { covariance[$0 * d + $0].squareRoot() }
        }
    }

    /// Whether θ lies in the support: inside the closed box for a uniform; any finite point for a
    /// Gaussian. A θ of the wrong dimension is outside.
    public func contains(_ theta: [Double]) -> Bool {
        guard theta.count == dimension else { return false }
        switch self {
        case let .uniform(low, high):
            for j in 0..<theta.count where !(theta[j] >= low[j] && theta[j] <= high[j]) { return false }
            return true
        case .gaussian:
            return theta.allSatisfy(\.isFinite)
        }
    }

    public func contains<C: Collection>(_ theta: C) -> Bool where C.Element == Float {
        contains(theta.map(Double.init))
    }

    /// How many rows of `theta` (row-major, `dimension` wide) lie in the support, and the first
    /// that does not: a prior that excludes the training θ would train a model whose every
    /// sample the prior then rejects.
    public func coverage(of theta: FloatRows) -> (inside: Int, firstOutside: Int?) {
        var inside = 0, firstOutside: Int?
        for start in stride(from: 0, to: theta.rows, by: 4096) {
            let chunk = theta.rows(start..<min(theta.rows, start + 4096)), cols = theta.cols
            for r in 0..<(chunk.count / cols) {
                if contains(chunk[(r * cols)..<((r + 1) * cols)]) { inside += 1 } else if firstOutside == nil { firstOutside = start + r }
            }
        }
        return (inside, firstOutside)
    }

    // MARK: densities

    /// log p(θ); −∞ outside the support or for a θ of the wrong dimension.
    public func logDensity(_ theta: [Double]) -> Double {
        guard contains(theta) else { return -.infinity }
        switch self {
        case let .uniform(low, high):
            return -zip(low, high).reduce(0) { $0 + Foundation.log($1.1 - $1.0) }
        case let .gaussian(mean, covariance):
            guard let factor = Prior.cholesky(covariance, mean.count) else { return .nan }
            return Prior.gaussianLogDensity(theta[...], mean: mean, cholesky: factor)
        }
    }

    /// log p(θ) of one row of single-precision parameters (the `ParameterPrior` requirement).
    public func logDensity(_ theta: ArraySlice<Float>) -> Double {
        logDensity(theta.map(Double.init))
    }

    /// log p(θ) of every row of a row-major n×d array; the covariance is factorized once.
    public func logDensities(_ theta: [Float]) throws -> [Double] {
        let d = dimension
        guard theta.count % d == 0 else {
            throw SBIError.sizeMismatch("θ has \(theta.count) values, not a whole number of rows of \(d)")
        }
        let rows = theta.count / d
        switch self {
        case .uniform:
            return (0..<rows).map { logDensity(theta[($0 * d)..<($0 * d + d)]) }
        case let .gaussian(mean, covariance):
            guard let factor = Prior.cholesky(covariance, d) else { return [Double](repeating: .nan, count: rows) }
            return (0..<rows).map { r in
                let row = theta[(r * d)..<(r * d + d)].map(Double.init)
                return row.allSatisfy(\.isFinite) ? Prior.gaussianLogDensity(row[...], mean: mean, cholesky: factor) : -.infinity
            }
        }
    }

    // MARK: sampling

    /// `count` draws, row-major count×d, from the Philox stream of `seed`. Uniform draws are
    /// rounded to single precision inside the box; Gaussian draws are mean + L·z with L the
    /// Cholesky factor of the covariance and z standard normals.
    public func sample(_ count: Int, seed: UInt64) -> [Float] {
        let d = dimension
        guard count > 0, d > 0 else { return [] }
        switch self {
        case let .uniform(low, high):
            let u = PhiloxDraws.uniforms(count: count * d, offset: 0, seed: seed)
            var out = [Float](repeating: 0, count: count * d)
            for i in 0..<count {
                for j in 0..<d {
                    out[i * d + j] = Prior.insideBox(low[j] + (high[j] - low[j]) * u[i * d + j], low[j], high[j])
                }
            }
            return out
        case let .gaussian(mean, covariance):
            let factor = Prior.cholesky(covariance, d) ?? [Double](repeating: .nan, count: d * d)
            let z = PhiloxDraws.normals(count: count * d, offset: 0, seed: seed)
            var out = [Float](repeating: 0, count: count * d)
            for i in 0..<count {
                for j in 0..<d {
                    var v = mean[j]
                    for k in 0...j { v += factor[j * d + k] * z[i * d + k] }
                    out[i * d + j] = Float(v)
                }
            }
            return out
        }
    }

    /// `Float(value)`, stepped back inside [low, high] when the rounding lands outside.
    static func insideBox(_ value: Double, _ low: Double, _ high: Double) -> Float {
        var f = Float(value)
        while Double(f) > high { f = f.nextDown }
        while Double(f) < low { f = f.nextUp }
        return f
    }

    // MARK: linear algebra

    /// The lower Cholesky factor of a symmetric d×d matrix (row-major), or nil when it is not
    /// positive definite.
    static func cholesky(_ a: [Double], _ d: Int) -> [Double]? {
        guard a.count == d * d else { return nil }
        var l = a
        return Cholesky.factor(&l, d) ? l : nil
    }

    /// log N(θ; μ, LLᵀ) = −½‖L⁻¹(θ − μ)‖² − Σ log L_ii − (d/2) log 2π.
    static func gaussianLogDensity(_ theta: ArraySlice<Double>, mean: [Double], cholesky l: [Double]) -> Double {
        let d = mean.count
        var y = [Double](repeating: 0, count: d)
        var quadratic = 0.0, logDet = 0.0
        let base = theta.startIndex
        for i in 0..<d {
            var v = theta[base + i] - mean[i]
            for k in 0..<i { v -= l[i * d + k] * y[k] }
            y[i] = v / l[i * d + i]
            quadratic += y[i] * y[i]
            logDet += Foundation.log(l[i * d + i])
        }
        return -0.5 * quadratic - logDet - 0.5 * Double(d) * Foundation.log(2 * Double.pi)
    }
}

extension Prior: ParameterPrior {}

// MARK: - command-line specs

extension Prior {
    /// The forms `parse` accepts, for help texts and error messages.
    public static let specForms = "uniform:LOW,HIGH, gaussian:MEAN,STD or mvn:MEAN_FILE,COV_FILE"

    /// A prior from `--prior` specs:
    ///  - `uniform:LOW,HIGH` — U(LOW, HIGH) for one dimension;
    ///  - `gaussian:MEAN,STD` (or `normal:`) — N(MEAN, STD²) for one dimension;
    ///  - `mvn:MEAN_FILE,COV_FILE` — a full-covariance Gaussian over all dimensions, its mean (d)
    ///    and row-major covariance (d×d) read from arrays by `loadArray` (by default the files'
    ///    NumPy `.npy` arrays); it must be the only spec.
    /// One-dimension specs are repeated, one per dimension in order, or given once and then
    /// broadcast to every dimension (`dimension`, when known, fixes the count). All specs must be
    /// of one kind: the prior is either box-uniform or Gaussian. Errors are one line naming the
    /// option and the expected form.
    public static func parse(_ specs: [String], dimension: Int? = nil, option: String = "--prior",
                             loadArray: ((String) throws -> [Double])? = nil) throws -> Prior {
        guard !specs.isEmpty else { throw SBIError.invalidArgument("\(option): no prior given; expected \(specForms)") }
        if let dimension, dimension <= 0 {
            throw SBIError.invalidArgument("\(option): the parameter dimension must be positive, got \(dimension)")
        }
        let parsed = try specs.map { try parseOne($0, option: option) }

        if case let .full(meanFile, covarianceFile) = parsed[0].kind {
            guard specs.count == 1 else {
                throw SBIError.invalidArgument("\(option) '\(specs[0])': an mvn prior covers every dimension and must be the only \(option)")
            }
            let loadArray = loadArray ?? { path in try NumPy.read(URL(fileURLWithPath: path)).doubles() }
            let mean: [Double], covariance: [Double]
            do {
                mean = try loadArray(meanFile)
                covariance = try loadArray(covarianceFile)
            } catch {
                throw SBIError.invalidArgument("\(option) '\(specs[0])': cannot read the arrays: \(error)")
            }
            if let dimension, mean.count != dimension {
                throw SBIError.sizeMismatch("\(option) '\(specs[0])': the mean has \(mean.count) values for \(dimension) parameters")
            }
            do { return try fullCovarianceGaussian(mean: mean, covariance: covariance) } catch {
                throw SBIError.invalidArgument("\(option) '\(specs[0])': \(error)")
            }
        }
        if parsed.contains(where: { if case .full = $0.kind { return true } else { return false } }) {
            throw SBIError.invalidArgument("\(option): an mvn prior covers every dimension and must be the only \(option)")
        }

        let count: Int
        if let dimension {
            guard specs.count == 1 || specs.count == dimension else {
                throw SBIError.invalidArgument(
                    "\(option): \(specs.count) specs for \(dimension) parameters; give one (applied to every dimension) or one per dimension")
            }
            count = dimension
        } else {
            count = specs.count
        }
        let components = (0..<count).map { parsed[specs.count == 1 ? 0 : $0] }
        let uniforms = components.compactMap { c -> (Double, Double)? in
            if case let .uniform(a, b) = c.kind { return (a, b) } else { return nil }
        }
        let gaussians = components.compactMap { c -> (Double, Double)? in
            if case let .gaussian(m, s) = c.kind { return (m, s) } else { return nil }
        }
        do {
            if uniforms.count == count { return try boxUniform(low: uniforms.map(\.0), high: uniforms.map(\.1)) }
            if gaussians.count == count { return try diagonalGaussian(mean: gaussians.map(\.0), std: gaussians.map(\.1)) }
        } catch {
            throw SBIError.invalidArgument("\(option) \(specs.joined(separator: " ")): \(error)")
        }
        throw SBIError.invalidArgument("\(option): mixes uniform and gaussian specs; a prior is all box-uniform or all Gaussian")
    }

    /// Convenience for a single spec string.
    public static func parse(_ spec: String, dimension: Int? = nil, option: String = "--prior",
                             loadArray: ((String) throws -> [Double])? = nil) throws -> Prior {
        try parse([spec], dimension: dimension, option: option, loadArray: loadArray)
    }

    private enum SpecKind {
        case uniform(Double, Double)
        case gaussian(Double, Double)
        case full(String, String)
    }

    private struct Spec { let kind: SpecKind }

    private static func parseOne(_ raw: String, option: String) throws -> Spec {
        let spec = raw.trimmingCharacters(in: .whitespaces)
        guard let colon = spec.firstIndex(of: ":") else {
            throw SBIError.invalidArgument("\(option) '\(raw)': expected \(specForms)")
        }
        let kind = spec[..<colon].lowercased().trimmingCharacters(in: .whitespaces)
        let fields = spec[spec.index(after: colon)...].split(separator: ",", omittingEmptySubsequences: false)
            .map { $0.trimmingCharacters(in: .whitespaces) }
        func numbers(_ form: String) throws -> (Double, Double) {
            guard fields.count == 2, let a = Double(fields[0]), let b = Double(fields[1]), a.isFinite, b.isFinite else {
                throw SBIError.invalidArgument("\(option) '\(raw)': expected \(form) with two finite numbers")
            }
            return (a, b)
        }
        switch kind {
        case "uniform", "box", "boxuniform":
            let (low, high) = try numbers("uniform:LOW,HIGH (e.g. uniform:-1,1)")
            guard low < high else {
                throw SBIError.invalidArgument("\(option) '\(raw)': expected uniform:LOW,HIGH with LOW < HIGH (e.g. uniform:-1,1)")
            }
            return Spec(kind: .uniform(low, high))
        case "gaussian", "normal":
            let (mean, std) = try numbers("gaussian:MEAN,STD (e.g. gaussian:0,0.1)")
            guard std > 0 else {
                throw SBIError.invalidArgument("\(option) '\(raw)': expected gaussian:MEAN,STD with STD > 0 (e.g. gaussian:0,0.1)")
            }
            return Spec(kind: .gaussian(mean, std))
        case "mvn":
            guard fields.count == 2, !fields[0].isEmpty, !fields[1].isEmpty else {
                throw SBIError.invalidArgument("\(option) '\(raw)': expected mvn:MEAN_FILE,COV_FILE (e.g. mvn:mean.npy,cov.npy)")
            }
            return Spec(kind: .full(fields[0], fields[1]))
        default:
            throw SBIError.invalidArgument("\(option) '\(raw)': unknown prior '\(kind)'; expected \(specForms)")
        }
    }
}

// MARK: - a prior inferred from training data

extension Prior {
    /// The prior assumed when training θ comes without one: a box-uniform over each dimension's
    /// observed range [min, max], widened by `padding` (5%) of that range on each side, so that
    /// the training points lie strictly inside and a posterior may put mass a little beyond them.
    /// A dimension whose θ is constant gets ±padding·max(|value|, 1) around it, and no box is
    /// narrower than single precision resolves. θ is row-major n×d; non-finite values are refused.
    public static func inferred(fromTheta theta: [Float], dimension d: Int, padding: Double = 0.05) throws -> Prior {
        guard d > 0 else { throw SBIError.invalidArgument("prior from θ: dimension must be positive, got \(d)") }
        guard !theta.isEmpty, theta.count % d == 0 else {
            throw SBIError.sizeMismatch("prior from θ: \(theta.count) values are not whole rows of \(d) parameters")
        }
        guard padding >= 0, padding.isFinite else {
            throw SBIError.invalidArgument("prior from θ: padding must be finite and non-negative, got \(padding)")
        }
        var low = [Double](repeating: .infinity, count: d), high = [Double](repeating: -.infinity, count: d)
        for (i, v) in theta.enumerated() {
            guard v.isFinite else {
                throw SBIError.invalidArgument("prior from θ: row \(i / d), dimension \(i % d) is \(v)")
            }
            low[i % d] = min(low[i % d], Double(v))
            high[i % d] = max(high[i % d], Double(v))
        }
        for j in 0..<d {
            let range = high[j] - low[j]
            let pad = range > 0 ? padding * range : padding * max(abs(low[j]), 1)
            var widened = (low[j] - pad, high[j] + pad)
            // A box narrower than single precision resolves (a constant dimension with no padding,
            // θ varying by a few ulps) is widened to the narrowest one `validate` accepts.
            let narrowest = max(abs(low[j]), abs(high[j]), 1) * 0x1p-19
            if widened.1 - widened.0 < narrowest {
                let middle = (low[j] + high[j]) / 2
                widened = (middle - narrowest / 2, middle + narrowest / 2)
            }
            (low[j], high[j]) = widened
        }
        return try boxUniform(low: low, high: high)
    }
}

extension Prior: CustomStringConvertible {
    public var description: String {
        switch self {
        case let .uniform(low, high):
            if Set(low).count == 1, Set(high).count == 1 { return "uniform[\(low[0]), \(high[0])]^\(low.count)" }
            return "uniform(" + zip(low, high).map { "[\($0), \($1)]" }.joined(separator: "×") + ")"
        case let .gaussian(mean, covariance):
            let d = mean.count
            let diagonal = (0..<d).allSatisfy { i in (0..<d).allSatisfy { j in i == j || covariance[i * d + j] == 0 } }
            guard diagonal else { return "gaussian(full covariance, d = \(d))" }
            return "gaussian(" + (0..<d).map { "\(mean[$0]),\(covariance[$0 * d + $0].squareRoot())" }.joined(separator: "; ") + ")"
        }
    }
}
