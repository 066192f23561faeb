// The demo's market: a dozen instruments and some news. Prices are made up; each chart is a
// random walk seeded by the ticker, so it looks the same on every visit.
export const INSTRUMENTS = [
  { ticker: "AAPL", name: "Apple Inc.", sector: "Technology", price: 231.4, change: 1.21 },
  { ticker: "MSFT", name: "Microsoft Corp.", sector: "Technology", price: 418.92, change: 0.64 },
  { ticker: "NVDA", name: "NVIDIA Corp.", sector: "Semiconductors", price: 138.07, change: 3.48 },
  { ticker: "TSLA", name: "Tesla Inc.", sector: "Automotive", price: 251.52, change: -2.17 },
  { ticker: "AMZN", name: "Amazon.com Inc.", sector: "Consumer", price: 186.51, change: 0.33 },
  { ticker: "GOOGL", name: "Alphabet Inc.", sector: "Technology", price: 164.74, change: -0.41 },
  { ticker: "META", name: "Meta Platforms", sector: "Technology", price: 567.36, change: 1.02 },
  { ticker: "JPM", name: "JPMorgan Chase", sector: "Financials", price: 221.49, change: -0.28 },
  { ticker: "V", name: "Visa Inc.", sector: "Financials", price: 289.09, change: 0.17 },
  { ticker: "XOM", name: "Exxon Mobil", sector: "Energy", price: 119.84, change: -1.12 },
  { ticker: "AMD", name: "Advanced Micro Devices", sector: "Semiconductors", price: 152.94, change: 2.05 },
  { ticker: "NFLX", name: "Netflix Inc.", sector: "Media", price: 754.68, change: 0.88 },
];

export const NEWS = [
  { id: "n-nvda-dc", tickers: ["NVDA", "AMD"], source: "Northwind Research", minutes: 12, title: "Data-centre demand: what Q3 guidance has to show", summary: "Consensus expects another record quarter; the debate has moved from revenue to gross margin and the pace of the next product cycle." },
  { id: "n-aapl-services", tickers: ["AAPL"], source: "Northwind Research", minutes: 38, title: "Apple's services line keeps the multiple up", summary: "Hardware is flat, services grow double digits: the mix shift explains most of this year's re-rating." },
  { id: "n-tsla-margins", tickers: ["TSLA"], source: "Wire", minutes: 55, title: "Price cuts weigh on Tesla's auto margins", summary: "Deliveries beat, but average selling prices fell again; energy storage is the bright spot." },
  { id: "n-jpm-nii", tickers: ["JPM", "V"], source: "Wire", minutes: 80, title: "Banks: net interest income has peaked, say analysts", summary: "Deposit costs catch up with loan yields; fee income and cards carry the quarter." },
  { id: "n-msft-ai", tickers: ["MSFT", "GOOGL"], source: "Northwind Research", minutes: 120, title: "Cloud AI capacity: who is spending, who is earning", summary: "Capex keeps rising across the hyperscalers; the revenue line is starting to follow." },
  { id: "n-xom-oil", tickers: ["XOM"], source: "Wire", minutes: 190, title: "Oil slips as supply outlook loosens", summary: "Higher non-OPEC output and soft demand data push crude lower for a third session." },
];

export function instrument(ticker) {
  return INSTRUMENTS.find((i) => i.ticker === ticker);
}

/** `points` closing prices ending at the instrument's price, the same on every visit. */
export function series(ticker, points) {
  let seed = [...ticker].reduce((h, c) => (h * 31 + c.charCodeAt(0)) >>> 0, 7);
  const random = () => ((seed = (seed * 1103515245 + 12345) >>> 0) / 2 ** 32);
  const { price } = instrument(ticker);
  const walk = [price];
  for (let i = 1; i < points; i++) walk.unshift(walk[0] * (1 + (random() - 0.5) * 0.03));
  return walk;
}
