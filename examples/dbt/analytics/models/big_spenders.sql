select customer_id, email, phone, total_spent
from {{ ref('shop_customers') }}
where total_spent >= 1000
