/* orderflow dashboard: one call to /dashboard/data every few seconds, five charts. No inline code. */
(function () {
  'use strict';
  var REFRESH_MS = 5000;
  var STATUS_COLORS = {
    received: '#7f8c8d',
    confirmed: '#2e86de',
    awaiting_stock: '#f39c12',
    partially_shipped: '#1abc9c',
    rejected: '#8e44ad',
    failed: '#c0392b',
    cancelled: '#95a5a6',
    completed: '#27ae60',
  };
  var charts = {};
  var $ = function (id) {
    return document.getElementById(id);
  };
  var money = function (cents) {
    return (cents / 100).toLocaleString(undefined, { minimumFractionDigits: 2, maximumFractionDigits: 2 });
  };
  var base = function (extra) {
    return Object.assign(
      {
        responsive: true,
        maintainAspectRatio: false,
        animation: { duration: 250 },
        plugins: { legend: { position: 'bottom' } },
      },
      extra || {},
    );
  };

  function upsert(id, config) {
    if (charts[id]) {
      charts[id].data = config.data;
      charts[id].update();
      return;
    }
    charts[id] = new window.Chart($(id), config);
  }

  function renderStatus(orders) {
    var statuses = Object.keys(orders.by_status);
    upsert('chart-status', {
      type: 'bar',
      data: {
        labels: statuses,
        datasets: [
          {
            label: 'orders',
            data: statuses.map(function (s) {
              return orders.by_status[s];
            }),
            backgroundColor: statuses.map(function (s) {
              return STATUS_COLORS[s] || '#555';
            }),
          },
        ],
      },
      options: base({
        plugins: { legend: { display: false } },
        scales: { y: { beginAtZero: true, ticks: { precision: 0 } } },
      }),
    });
  }

  function renderDays(orders) {
    upsert('chart-days', {
      type: 'bar',
      data: {
        labels: orders.per_day.map(function (d) {
          return d.day.slice(5);
        }),
        datasets: [
          {
            type: 'bar',
            label: 'orders',
            data: orders.per_day.map(function (d) {
              return d.orders;
            }),
            backgroundColor: '#2e86de',
            yAxisID: 'y',
          },
          {
            type: 'line',
            label: 'revenue',
            data: orders.per_day.map(function (d) {
              return d.revenue_cents / 100;
            }),
            borderColor: '#27ae60',
            backgroundColor: '#27ae60',
            yAxisID: 'revenue',
            tension: 0.2,
          },
        ],
      },
      options: base({
        scales: {
          y: { beginAtZero: true, ticks: { precision: 0 }, title: { display: true, text: 'orders' } },
          revenue: {
            beginAtZero: true,
            position: 'right',
            grid: { drawOnChartArea: false },
            title: { display: true, text: 'revenue (confirmed, partially shipped, completed)' },
          },
        },
      }),
    });
  }

  function renderStock(rows) {
    upsert('chart-stock', {
      type: 'bar',
      data: {
        labels: rows.map(function (r) {
          return r.sku;
        }),
        datasets: [
          {
            label: 'available',
            data: rows.map(function (r) {
              return r.available;
            }),
            backgroundColor: '#27ae60',
          },
          {
            label: 'reserved',
            data: rows.map(function (r) {
              return r.reserved;
            }),
            backgroundColor: '#2e86de',
          },
          {
            label: 'backordered',
            data: rows.map(function (r) {
              return r.backordered;
            }),
            backgroundColor: '#e67e22',
          },
        ],
      },
      options: base({ scales: { y: { beginAtZero: true, ticks: { precision: 0 } } } }),
    });
  }

  function renderLocations(rows) {
    upsert('chart-locations', {
      type: 'bar',
      data: {
        labels: rows.map(function (r) {
          return r.location + (r.active ? '' : ' (inactive)');
        }),
        datasets: [
          {
            label: 'free',
            data: rows.map(function (r) {
              return r.free;
            }),
            backgroundColor: '#27ae60',
          },
          {
            label: 'reserved',
            data: rows.map(function (r) {
              return r.reserved;
            }),
            backgroundColor: '#2e86de',
          },
        ],
      },
      options: base({
        scales: { x: { stacked: true }, y: { stacked: true, beginAtZero: true, ticks: { precision: 0 } } },
      }),
    });
  }

  function renderQueues(queues) {
    var list = queues || [];
    var states = [
      ['waiting', '#7f8c8d'],
      ['active', '#2e86de'],
      ['delayed', '#f39c12'],
      ['failed', '#c0392b'],
    ];
    upsert('chart-queues', {
      type: 'bar',
      data: {
        labels: list.map(function (q) {
          return q.name;
        }),
        datasets: states.map(function (s) {
          return {
            label: s[0],
            data: list.map(function (q) {
              return q[s[0]];
            }),
            backgroundColor: s[1],
          };
        }),
      },
      options: base({
        scales: { x: { stacked: true }, y: { stacked: true, beginAtZero: true, ticks: { precision: 0 } } },
      }),
    });
  }

  function renderLedger(ledger) {
    var bad = ledger.skus - ledger.ok;
    upsert('chart-ledger', {
      type: 'doughnut',
      data: {
        labels: ['SKUs in balance', 'SKUs out of balance'],
        datasets: [{ data: [ledger.ok, bad], backgroundColor: ['#27ae60', '#c0392b'] }],
      },
      options: base(),
    });
    var table = $('mismatches');
    var body = table.querySelector('tbody');
    body.textContent = '';
    ledger.mismatches.forEach(function (m) {
      var tr = document.createElement('tr');
      [m.sku, m.expected_on_hand, m.on_hand].forEach(function (v, i) {
        var td = document.createElement('td');
        td.textContent = String(v);
        if (i === 2) td.className = 'bad';
        tr.appendChild(td);
      });
      body.appendChild(tr);
    });
    table.hidden = ledger.mismatches.length === 0;
  }

  function renderTiles(data) {
    $('tile-orders').textContent = data.orders.orders.toLocaleString();
    $('tile-revenue').textContent = money(data.orders.revenue_cents);
    $('tile-awaiting').textContent = data.orders.by_status.awaiting_stock.toLocaleString();
    $('tile-failed').textContent = data.queues
      ? data.queues
          .reduce(function (n, q) {
            return n + q.failed;
          }, 0)
          .toLocaleString()
      : 'n/a';
    var bad = data.ledger.skus - data.ledger.ok;
    $('tile-ledger').textContent = bad === 0 ? 'in balance' : bad + ' SKU' + (bad === 1 ? '' : 's') + ' off';
    $('tile-ledger-box').className = 'tile ' + (bad === 0 ? 'good' : 'bad');
  }

  function refresh() {
    return fetch('/dashboard/data', { credentials: 'same-origin', headers: { accept: 'application/json' } })
      .then(function (res) {
        if (!res.ok) throw new Error('data: HTTP ' + res.status);
        return res.json();
      })
      .then(function (data) {
        renderTiles(data);
        renderStatus(data.orders);
        renderDays(data.orders);
        renderStock(data.inventory);
        renderLocations(data.locations);
        renderQueues(data.queues);
        renderLedger(data.ledger);
        var status = $('status');
        status.className = 'status';
        status.textContent =
          'updated ' +
          new Date(data.generated_at).toLocaleTimeString() +
          (data.queues ? '' : ' · Redis unreachable') +
          ' · refreshes every ' +
          REFRESH_MS / 1000 +
          ' s';
        document.body.dataset.loaded = 'true';
      })
      .catch(function (err) {
        var status = $('status');
        status.className = 'status error';
        status.textContent = 'could not refresh: ' + err.message;
      });
  }

  function loop() {
    refresh().then(function () {
      setTimeout(loop, REFRESH_MS);
    });
  }
  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', loop);
  else loop();
})();
