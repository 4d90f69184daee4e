-- Customers who have ordered before but not in the 180 days before the latest order on record
-- (measured against the data, not the clock, so the demo is deterministic).
select c.customer_id, c.email, c.phone, c.device_id
from customers c
join orders o on o.customer_id = c.customer_id
group by c.customer_id, c.email, c.phone, c.device_id
having max(o.ordered_at) < (select max(ordered_at) from orders) - interval '180 days'
