import Contracts
import Foundation
import ServiceKit
import SwiftProtobuf

/// The demo tenant's user features (`--demo-data`): `user_stats` for users
/// `u1` … `u1000`, the inputs the demo ranker and personalization read.
/// Made by a seeded generator, so every machine gets the same users; one in
/// eight has no row, as new users have none.
public enum DemoFeatures {
    public static let tenant = "demo"
    public static let userCount = 1000
    public static let viewName = "user_stats"

    /// The most specific categories of the demo catalog.
    static let categories = ["home/kitchen", "home/furniture", "electronics/audio", "electronics/computers", "sports/outdoor",
                             "sports/fitness", "fashion/men", "fashion/women", "books/fiction", "toys/games"]

    /// user_id → purchases, spend, favorite_category.
    public static var view: FeatureView {
        .with {
            $0.name = viewName
            $0.entities = ["user_id"]
            $0.description_p = "What each user bought: counts, spend and the category they buy most from."
            $0.owner = "recommendations"
            $0.ttl = .init(seconds: 90 * 86_400)
            $0.features = [
                .with { $0.name = "purchases"; $0.type = .int64; $0.description_p = "Orders placed, all time" },
                .with { $0.name = "spend"; $0.type = .double; $0.description_p = "Total spent, EUR" },
                .with { $0.name = "favorite_category"; $0.type = .string; $0.description_p = "Most specific category bought from most" },
            ]
        }
    }

    /// The rows, one per known user; the same on every run but for event time.
    static func rows(now: Date) -> [Platform_Featurestore_V1_FeatureRow] {
        (1...userCount).compactMap { index in
            var random = SeededGenerator(seed: UInt64(index) &* 0xD1B5_4A32_D192_ED03 &+ 7)
            guard random.next() % 8 != 0 else { return nil }
            // Geometric-ish purchase counts and a log-spread order value around 70 EUR.
            let purchases = Int64(-log(1 - random.unit()) * 8)
            let orderValue = 70 * exp((random.unit() - 0.5) * 2.4)
            let category = categories[Int(random.next() % UInt64(categories.count))]
            return .with { row in
                row.entityKey = ["user_id": .with { $0.stringVal = "u\(index)" }]
                row.eventTime = Google_Protobuf_Timestamp(date: now)
                row.values["purchases"] = .with { $0.int64Val = purchases }
                row.values["spend"] = .with { $0.doubleVal = (Double(purchases) * orderValue * 100).rounded() / 100 }
                row.values["favorite_category"] = .with { $0.stringVal = category }
            }
        }
    }

    /// Declares the view and writes the users; repeating it is harmless.
    static func seed(into handler: FeatureStoreHandler) async throws {
        let tenant = TenantID(tenant)
        _ = try await handler.applyView(view, tenant: tenant, idempotency: nil)
        _ = try await handler.write(rows(now: Date()), to: viewName, tenant: tenant, idempotency: nil)
    }
}
